"""The ASGI, FastAPI/Starlette and Django faces name their extra when their dependency is missing, and
``import etagkit`` loads none of them (nor asyncio's event-loop machinery through them)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("etagkit.asgi", "anyio", "asgi"),
        ("etagkit.starlette", "starlette", "fastapi"),
        ("etagkit.django", "django", "django"),
    ],
)
def test_a_face_without_its_dependency_names_the_extra(module: str, hidden: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{hidden!r}] = None\n"  # makes `import {hidden}` raise ImportError
        f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"etagkit[{extra}]" in out


def test_import_etagkit_loads_no_asgi_or_django_module() -> None:
    code = (
        "import sys, etagkit, etagkit.cache, etagkit.wsgi; "
        "names = ('anyio', 'starlette', 'django', 'asgiref', 'uvicorn'); "
        "print(' '.join(m for m in names if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
