"""The request body parser: DRF's JSON parser, with a body nested too deep as a 400.

Python's json module parses nesting recursively: a body a few thousand levels deep raises
RecursionError, which DRF's parser does not expect (a 500 with a traceback). No request of
this API nests more than a few levels, so such a body is malformed input like any other.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """``application/json`` bodies; nesting deep enough to exhaust the parser is a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        """The parsed body; ParseError (400) for malformed or absurdly nested JSON."""
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as e:
            raise ParseError("JSON parse error - the body is nested too deeply.") from e
