from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class CursorByIdPagination(CursorPagination):
    """Stable under concurrent inserts (offset paging skips or repeats rows while events stream in)."""

    ordering = "-id"
    page_size_query_param = "page_size"
    page_size_query_description = "rows per page, 1 to 1000 (more is read as 1000)"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        """DRF falls back to the default page size when `page_size` is not a positive integer, so a
        client's typo (`page_size=fifty`) would silently change the page; here it is a 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not raw.strip("0"):
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return self.max_page_size if len(raw) > 9 else min(int(raw), self.max_page_size)  # int() of 5,000 digits raises
