import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API (igflow-dashboard on its default port); the built app is
// served by the API itself, or from S3 + CloudFront in AWS.
export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": "http://127.0.0.1:8090", "/oauth": "http://127.0.0.1:8090" } },
});
