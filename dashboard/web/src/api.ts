// The dashboard API. The access token goes only in the Authorization header: never in a URL.

import { accessToken, forgetSession } from "./auth";
import type { FieldError } from "./logic";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public fields: FieldError[] = [],
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const token = await accessToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401) await forgetSession();
    throw new ApiError(response.status, json?.error ?? response.statusText, json?.fields ?? []);
  }
  return json as T;
}

/** Reads one live-feed stream (server-sent events over fetch, so the token stays in a
 * header) until the server ends it; `since` resumes after the newest change seen. */
export async function openFeed(onChunk: (text: string) => void, signal: AbortSignal, since?: string): Promise<void> {
  const url = since ? `/api/feed?since=${encodeURIComponent(since)}` : "/api/feed";
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${(await accessToken()) ?? ""}`, Accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || !response.body) throw new ApiError(response.status, "the live feed is unavailable");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onChunk(decoder.decode(value, { stream: true }));
  }
}
