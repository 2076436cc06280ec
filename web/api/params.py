"""Bounds of the API's numeric parameters, checked at the edge (docs/api.md, Errors).

Ids and numbers are PostgreSQL ``integer`` columns: a value past 2**31-1 would overflow the
database (or SQLite's 64 bits) and answer 500. Declared here, the bound is in the OpenAPI
document and a value outside it is a 400 with a sentence naming the parameter.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

MAX_ID = 2**31 - 1

Id = Annotated[int, Parameter(ge=1, le=MAX_ID, description="an id, 1 to 2147483647")]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="at most this many, 1 to 1000")]
