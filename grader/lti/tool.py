"""The tool as an LMS sees it: its URLs, the scopes it asks for, its placements, and the
configuration document an LMS admin pastes (generic JSON, Canvas's developer-key JSON, or text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TITLE = "LLM grader"
DESCRIPTION = "Exercises in LLM engineering, graded automatically; grades flow back to the course."
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)
MESSAGES = ("LtiResourceLinkRequest", "LtiDeepLinkingRequest")
# where a course shows the tool: adding a concept to modules or assignments (deep linking)
PLACEMENTS = (
    {"placement": "link_selection", "message_type": "LtiDeepLinkingRequest"},
    {"placement": "assignment_selection", "message_type": "LtiDeepLinkingRequest"},
)


@dataclass(frozen=True)
class ToolUrls:
    """The tool's LTI endpoints under its public base URL."""

    base: str

    @classmethod
    def of(cls, base: str) -> ToolUrls:
        return cls(base.rstrip("/"))

    @property
    def login(self) -> str:
        return f"{self.base}/lti/login"

    @property
    def launch(self) -> str:
        return f"{self.base}/lti/launch"

    @property
    def jwks(self) -> str:
        return f"{self.base}/lti/jwks"

    @property
    def config(self) -> str:
        return f"{self.base}/lti/config"

    @property
    def domain(self) -> str:
        return self.base.split("://", 1)[-1].split("/", 1)[0]


def config(urls: ToolUrls) -> dict[str, Any]:
    """Everything an LMS asks when registering the tool, by the names the LTI specs use."""
    return {
        "title": TITLE,
        "description": DESCRIPTION,
        "domain": urls.domain,
        "target_link_uri": urls.launch,
        "oidc_initiation_url": urls.login,
        "redirect_uris": [urls.launch],
        "jwks_uri": urls.jwks,
        "deep_linking_url": urls.launch,
        "messages": list(MESSAGES),
        "scopes": list(SCOPES),
        "placements": [dict(p, target_link_uri=urls.launch) for p in PLACEMENTS],
        "custom_parameters": {},
        "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
        "https_required": True,
        "canvas": canvas(urls),
    }


def canvas(urls: ToolUrls) -> dict[str, Any]:
    """Canvas's developer key "Paste JSON" document."""
    return {
        "title": TITLE,
        "description": DESCRIPTION,
        "oidc_initiation_url": urls.login,
        "target_link_uri": urls.launch,
        "public_jwk_url": urls.jwks,
        "scopes": list(SCOPES),
        "extensions": [
            {
                "domain": urls.domain,
                "platform": "canvas.instructure.com",
                "privacy_level": "public",
                "settings": {
                    "placements": [
                        dict(
                            p,
                            target_link_uri=urls.launch,
                            text=TITLE,
                            selection_width=800,
                            selection_height=600,
                        )
                        for p in PLACEMENTS
                    ]
                },
            }
        ],
        "custom_fields": {},
    }


def config_text(urls: ToolUrls) -> str:
    """The same values as lines of text, for LMSs whose forms take them one by one."""
    lines = [
        f"Tool name:                    {TITLE}",
        f"Tool URL / target link URI:   {urls.launch}",
        f"Initiate login URL (OIDC):    {urls.login}",
        f"Redirection URI(s):           {urls.launch}",
        f"Deep linking URL:             {urls.launch}",
        "Public key type:              Keyset URL",
        f"Public keyset (JWKS) URL:     {urls.jwks}",
        f"Domain:                       {urls.domain}",
        f"Messages:                     {', '.join(MESSAGES)}",
        "Services (scopes):",
        *(f"  {scope}" for scope in SCOPES),
        "Placements:                   "
        + ", ".join(f"{p['placement']} ({p['message_type']})" for p in PLACEMENTS),
        "Share with the tool:          name and email (privacy level: public)",
        "HTTPS is required.",
    ]
    return "\n".join(lines) + "\n"
