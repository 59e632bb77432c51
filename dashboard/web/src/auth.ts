// Who is signed in. With Supabase Auth (production), supabase-js keeps the session in this
// tab's session storage and refreshes the access token; with the development sign-in (this
// machine and tests only), the API mints the token. Either way the token goes to the API only
// in the Authorization header, never in a URL.

import { type SupabaseClient, createClient } from "@supabase/supabase-js";

export interface SignInSettings {
  dev_sign_in: boolean;
  supabase: { url: string; anon_key: string } | null;
}

export type SignInMode = "dev" | "supabase" | "none";

/** The development sign-in wins when it is on: it exists only where it was asked for. */
export function signInMode(settings: SignInSettings): SignInMode {
  if (settings.dev_sign_in) return "dev";
  return settings.supabase ? "supabase" : "none";
}

const DEV_TOKEN_KEY = "igflow.token";

interface Auth {
  mode: SignInMode;
  supabase: SupabaseClient | null;
}

let auth: Promise<Auth> | null = null;

/** Reads the API's sign-in settings once and starts supabase-js if they name a project. */
function load(): Promise<Auth> {
  auth ??= fetch("/api/config")
    .then((r) => {
      if (!r.ok) throw new Error(`the dashboard API answered ${r.status}`);
      return r.json() as Promise<SignInSettings>;
    })
    .then((settings) => {
      const mode = signInMode(settings);
      const supabase =
        mode === "supabase" && settings.supabase
          ? createClient(settings.supabase.url, settings.supabase.anon_key, {
              auth: { storage: window.sessionStorage, persistSession: true, autoRefreshToken: true, detectSessionInUrl: false },
            })
          : null;
      return { mode, supabase };
    });
  auth.catch(() => { auth = null; });
  return auth;
}

export async function signInModeNow(): Promise<SignInMode> {
  return (await load()).mode;
}

/** The current access token (refreshed by supabase-js when it is about to expire), if any. */
export async function accessToken(): Promise<string | null> {
  const { supabase } = await load();
  if (!supabase) return sessionStorage.getItem(DEV_TOKEN_KEY);
  const { data } = await supabase.auth.getSession();
  return data.session?.access_token ?? null;
}

export async function signIn(email: string, password: string): Promise<void> {
  const { supabase } = await load();
  if (supabase) {
    const { error } = await supabase.auth.signInWithPassword({ email, password });
    if (error) throw new Error(error.message);
    return;
  }
  const response = await fetch("/api/dev/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email }),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error(answer?.error ?? response.statusText);
  sessionStorage.setItem(DEV_TOKEN_KEY, answer.access_token);
}

/** Ends the session: with Supabase, its refresh token stops working everywhere. */
export async function signOut(): Promise<void> {
  sessionStorage.removeItem(DEV_TOKEN_KEY);
  const { supabase } = await load();
  if (supabase) await supabase.auth.signOut();
}

/** The API refused the token: forget it on this tab. */
export async function forgetSession(): Promise<void> {
  sessionStorage.removeItem(DEV_TOKEN_KEY);
  const { supabase } = await load();
  if (supabase) await supabase.auth.signOut({ scope: "local" });
}

/** Where a link Supabase Auth mailed (an invitation, a password recovery) left the browser:
 * signed in, to choose a password; or refused (used or expired). */
export type AuthRedirect =
  | { kind: "invite" | "recovery"; accessToken: string; refreshToken: string }
  | { kind: "error"; message: string };

/** Reads Supabase Auth's redirect fragment (`#access_token=…&type=invite`, or
 * `#error_description=…`); anything else (the app's own `#/route`) is not one. */
export function parseAuthRedirect(hash: string): AuthRedirect | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const failed = params.get("error_description");
  if (failed) return { kind: "error", message: failed };
  const accessToken = params.get("access_token");
  const refreshToken = params.get("refresh_token");
  const kind = params.get("type");
  if (!accessToken || !refreshToken) return null;
  if (kind !== "invite" && kind !== "recovery") return { kind: "error", message: `unexpected sign-in link (${kind ?? "no type"})` };
  return { kind, accessToken, refreshToken };
}

/** Takes the redirect out of the address bar before anything renders: tokens must not stay
 * in the URL (history, shared links, screenshots). */
export function takeAuthRedirect(): AuthRedirect | null {
  const redirect = parseAuthRedirect(window.location.hash);
  if (redirect) window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/`);
  return redirect;
}

async function project(): Promise<SupabaseClient> {
  const { supabase } = await load();
  if (!supabase) throw new Error("this dashboard has no Supabase project to sign in with");
  return supabase;
}

/** Starts the session a mailed link carried. */
export async function acceptLink(accessToken: string, refreshToken: string): Promise<void> {
  const { error } = await (await project()).auth.setSession({ access_token: accessToken, refresh_token: refreshToken });
  if (error) throw new Error(error.message);
}

/** Sets the signed-in person's password (after an invitation or a recovery link). */
export async function choosePassword(password: string): Promise<void> {
  const { error } = await (await project()).auth.updateUser({ password });
  if (error) throw new Error(error.message);
}

/** Mails a link to choose a new password; Supabase answers alike whether or not the address
 * has an account. */
export async function sendPasswordLink(email: string): Promise<void> {
  const { error } = await (await project()).auth.resetPasswordForEmail(email, { redirectTo: `${window.location.origin}/` });
  if (error) throw new Error(error.message);
}
