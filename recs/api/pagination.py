from rest_framework.pagination import CursorPagination


class CursorByIdPagination(CursorPagination):
    """Stable under concurrent inserts (offset paging skips or repeats rows while events stream in)."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000
