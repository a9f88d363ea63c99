"""The private stream (``/api/v1/private-stream``): anonymous streaming paid with tokens."""
