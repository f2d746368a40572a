"""End-to-end tests: headless Chromium against a running web app and grader worker."""
