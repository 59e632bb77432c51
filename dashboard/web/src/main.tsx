import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { takeAuthRedirect } from "./auth";
import "./styles.css";

// Before the first render: a mailed link's tokens leave the address bar at once.
const redirect = takeAuthRedirect();
const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App redirect={redirect} />
    </StrictMode>,
  );
}
