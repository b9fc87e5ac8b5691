"""The bookstore's catalog read path with werkzeug's own ETags only: the load run's baseline.

Same SQLite data layer (``examples.bookstore.Catalog``), the same ``jsonify`` body for ``GET /books``; the
validator is werkzeug's ``Response.add_etag()`` (a hash of the body, so every request queries and
serializes the whole catalog) and ``make_conditional()`` answers the 304. No etagkit anywhere.

    gunicorn -w 2 -b 127.0.0.1:8001 'benchmarks.load.werkzeug_bookstore:create_app(db="/tmp/books.db")'
"""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from examples.bookstore import Catalog


def create_app(db: str) -> Flask:
    """A Flask app serving ``GET /books`` from the SQLite file ``db`` with werkzeug's ETags."""
    app = Flask(__name__)
    catalog = Catalog(db)

    @app.get("/books")
    def books() -> ResponseReturnValue:
        response = jsonify([book.as_json() for book in catalog.all()])
        response.add_etag()
        return response.make_conditional(request)

    return app
