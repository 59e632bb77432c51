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
