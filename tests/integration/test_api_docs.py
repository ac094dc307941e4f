import pathlib
import re

from openapi_spec_validator import validate
from starlette.testclient import TestClient

from api import openapi

API = pathlib.Path(openapi.__file__).parent


def test_openapi_document_is_valid_openapi_3_1(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_signed_in_document_is_valid_and_declares_the_bearer_scheme() -> None:
    document = openapi.document("1", signed_in=True)
    validate(document)
    assert document["security"] == [{"entraBearer": []}]
    assert document["paths"]["/patients"]["get"]["responses"]["401"]
    assert "security" not in openapi.document("1")


def test_openapi_describes_every_route_of_the_app(client: TestClient) -> None:
    documented = set(client.get("/openapi.json").json()["paths"])
    served = {
        route.path
        for route in client.app.routes  # type: ignore[attr-defined]
        if getattr(route, "methods", None) and route.path not in ("/openapi.json", "/docs")
    }
    assert documented == served


def test_openapi_lists_every_error_code_the_code_can_answer() -> None:
    sources = "".join(
        (API / f"{name}.py").read_text(encoding="utf-8")
        for name in ("app", "handlers", "middleware", "responses", "auth")
    )
    raised = set(re.findall(r'"([A-Z]+(?:_[A-Z]+)+)"', sources)) - {"JSON_MEDIA_TYPE"}
    assert raised <= set(openapi.ERROR_CODES)


def test_docs_page_and_its_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/docs")
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)

    assert page.status_code == 200
    assert "://" not in page.text, "no asset may come from another host"
    assert len(assets) == 2
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200
        assert len(response.content) > 10_000
