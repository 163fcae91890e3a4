"""The sidebar: sections, their pages and icons. Later pages flip `soon` off and name their URL."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

# 24x24 stroke icons (shapes after Feather icons, MIT licence).
_ICON_PATHS = {
    "home": '<path d="M3 9.5 12 3l9 6.5V20a1 1 0 0 1-1 1h-5v-6H9v6H4a1 1 0 0 1-1-1z"/>',
    "box": '<path d="M21 16V8a2 2 0 0 0-1-1.73l-7-4a2 2 0 0 0-2 0l-7 4A2 2 0 0 0 3 8v8a2 2 0 0 0 1 1.73l7 4a2 2 0 '
    '0 0 2 0l7-4A2 2 0 0 0 21 16z"/><path d="M3.3 7 12 12l8.7-5M12 22V12"/>',
    "users": '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>'
    '<path d="M23 21v-2a4 4 0 0 0-3-3.87M16 3.13a4 4 0 0 1 0 7.75"/>',
    "activity": '<path d="M22 12h-4l-3 9L9 3l-3 9H2"/>',
    "upload": '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4M17 8l-5-5-5 5M12 3v12"/>',
    "key": '<circle cx="7.5" cy="15.5" r="4.5"/><path d="M10.7 12.3 20 3M16 7l3 3M18.5 4.5l2 2"/>',
    "trending": '<path d="m23 6-9.5 9.5-5-5L1 18"/><path d="M17 6h6v6"/>',
    "layers": '<path d="M12 2 2 7l10 5 10-5zM2 17l10 5 10-5M2 12l10 5 10-5"/>',
    "filter": '<path d="M22 3H2l8 9.46V19l4 2v-8.54z"/>',
    "tag": '<path d="M20.59 13.41 13.42 20.58a2 2 0 0 1-2.83 0L2 12V2h10l8.59 8.59a2 2 0 0 1 0 2.82z"/>'
    '<circle cx="7" cy="7" r="1"/>',
    "split": '<path d="M16 3h5v5M4 20 21 3M21 16v5h-5M15 15l6 6M4 4l5 5"/>',
    "card": '<rect x="1" y="4" width="22" height="16" rx="2"/><path d="M1 10h22"/>',
    "logout": '<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "link": '<path d="M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71"/>'
    '<path d="M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71"/>',
    "search": '<circle cx="11" cy="11" r="7"/><path d="m21 21-4.35-4.35"/>',
    "arrow_left": '<path d="M19 12H5M12 19l-7-7 7-7"/>',
    "arrow_right": '<path d="M5 12h14M12 5l7 7-7 7"/>',
    "copy": '<rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 '
    '2 0 0 1 2 2v1"/>',
}


def icon(name: str, size: int = 16) -> SafeString:
    return mark_safe(  # fixed markup from the table above
        f'<svg class="icon" width="{size}" height="{size}" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
        f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
        f"{_ICON_PATHS[name]}</svg>"
    )


def all_icons() -> dict[str, SafeString]:
    """Every icon by name, for templates (`{{ icons.key }}`)."""
    return {name: icon(name) for name in _ICON_PATHS}


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    icon_name: str
    url_name: str | None = None  # None: not built yet, shown as "soon"

    @property
    def url(self) -> str | None:
        return reverse(self.url_name) if self.url_name else None

    @property
    def icon(self) -> SafeString:
        return icon(self.icon_name)


SECTIONS: tuple[tuple[str, tuple[NavItem, ...]], ...] = (
    ("", (NavItem("home", "Overview", "home", "dashboard:home"),)),
    (
        "Data",
        (
            NavItem("products", "Products", "box", "dashboard:products"),
            NavItem("customers", "Customers", "users", "dashboard:customers"),
            NavItem("events", "Events", "activity", "dashboard:events"),
            NavItem("imports", "Imports", "upload", "dashboard:imports"),
            NavItem("integrations", "Store connections", "link", "dashboard:integrations"),
        ),
    ),
    (
        "Recommendations",
        (
            NavItem("training", "Training runs", "trending", "dashboard:training"),
            NavItem("models", "Models", "layers", "dashboard:models"),
            NavItem("rules", "Rules", "filter", "dashboard:rules"),
            NavItem("promotions", "Promotions", "tag", "dashboard:promotions"),
            NavItem("experiments", "Experiments", "split", "dashboard:experiments"),
        ),
    ),
    (
        "Settings",
        (
            NavItem("keys", "API keys", "key", "dashboard:keys"),
            NavItem("billing", "Billing", "card", "dashboard:billing"),
            NavItem("privacy", "Shared statistics", "users", "dashboard:privacy"),
        ),
    ),
)


def section_url(key: str) -> str:
    """The list page of a section, where switching shops lands (a detail page may not exist there)."""
    for _, items in SECTIONS:
        for item in items:
            if item.key == key and item.url_name:
                return item.url
    return reverse("dashboard:home")
