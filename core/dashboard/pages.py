"""The signed-in layout every dashboard page renders into (sidebar, shop switcher, user menu)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.dashboard.nav import SECTIONS, all_icons, section_url


def render_page(request: HttpRequest, template: str, section: str, context: dict | None = None) -> HttpResponse:
    """Render a page of the signed-in layout (sidebar, shop switcher, user menu)."""
    base = {
        "shop": request.shop,
        "sections": SECTIONS,
        "section": section,
        "next_url": section_url(section),
        "icons": all_icons(),
    }
    return render(request, template, {**base, **(context or {})})
