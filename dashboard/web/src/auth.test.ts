import { describe, expect, it } from "vitest";
import { parseAuthRedirect, signInMode } from "./auth";

describe("signInMode", () => {
  const project = { url: "https://ref.supabase.co", anon_key: "sb_publishable_x" };
  it("uses Supabase Auth when the API names a project", () => {
    expect(signInMode({ dev_sign_in: false, supabase: project })).toBe("supabase");
  });
  it("prefers the development sign-in where it was switched on", () => {
    expect(signInMode({ dev_sign_in: true, supabase: project })).toBe("dev");
  });
  it("has no sign-in when neither is configured", () => {
    expect(signInMode({ dev_sign_in: false, supabase: null })).toBe("none");
  });
});

describe("parseAuthRedirect", () => {
  it("takes the session of an invitation or recovery link", () => {
    expect(parseAuthRedirect("#access_token=eyJ.a.b&expires_at=1&expires_in=3600&refresh_token=rt-1&token_type=bearer&type=invite"))
      .toEqual({ kind: "invite", accessToken: "eyJ.a.b", refreshToken: "rt-1" });
    expect(parseAuthRedirect("#access_token=t&refresh_token=r&type=recovery")?.kind).toBe("recovery");
  });
  it("reports a used or expired link", () => {
    expect(parseAuthRedirect("#error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired"))
      .toEqual({ kind: "error", message: "Email link is invalid or has expired" });
  });
  it("leaves the app's own routes alone", () => {
    expect(parseAuthRedirect("#/campaigns/42?tab=results")).toBeNull();
    expect(parseAuthRedirect("")).toBeNull();
  });
});
