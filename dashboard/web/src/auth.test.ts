import { describe, expect, it } from "vitest";
import { signInMode } from "./auth";

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
