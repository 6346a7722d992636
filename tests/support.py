"""Helpers for talking GraphQL to the app in tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

STRONG_PASSWORD = "correct horse battery staple"

SESSION_FIELDS = "session { accessToken refreshToken accessTokenExpiresAt refreshTokenExpiresAt }"
ERROR_FIELDS = "... on MutationError { message field } "

SIGN_UP = f"""
mutation($input: SignUpInput!) {{
  signUp(input: $input) {{
    __typename
    ... on SignUpSuccess {{ user {{ id username email displayName }} {SESSION_FIELDS} }}
    ... on SignUpError {{ code message field }}
  }}
}}"""

LOG_IN = f"""
mutation($input: LogInInput!) {{
  logIn(input: $input) {{
    __typename
    ... on LogInSuccess {{ user {{ id username }} {SESSION_FIELDS} }}
    ... on LogInError {{ code message field }}
  }}
}}"""

REFRESH = f"""
mutation($token: String!) {{
  refreshSession(input: {{refreshToken: $token}}) {{
    __typename
    ... on RefreshSessionSuccess {{ user {{ username }} {SESSION_FIELDS} }}
    ... on RefreshSessionError {{ code message }}
  }}
}}"""

VIEWER = "{ viewer { id username email displayName bio isLocked role } }"


@dataclass
class Account:
    id: str
    username: str
    access_token: str
    refresh_token: str


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Run an operation that must succeed at the GraphQL level; return its data."""
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def sign_up(
        self,
        username: str,
        email: str | None = None,
        password: str = STRONG_PASSWORD,
        display_name: str | None = None,
    ) -> Account:
        data = await self(
            SIGN_UP,
            {
                "input": {
                    "username": username,
                    "email": email or f"{username.lower()}@example.org",
                    "password": password,
                    "displayName": display_name or username.title(),
                }
            },
        )
        result = data["signUp"]
        assert result["__typename"] == "SignUpSuccess", result
        return Account(
            id=result["user"]["id"],
            username=result["user"]["username"],
            access_token=result["session"]["accessToken"],
            refresh_token=result["session"]["refreshToken"],
        )

    async def log_in(self, login: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        data = await self(LOG_IN, {"input": {"login": login, "password": password}})
        result: dict[str, Any] = data["logIn"]
        return result

    async def viewer(self, token: str | None) -> dict[str, Any] | None:
        data = await self(VIEWER, token=token)
        viewer: dict[str, Any] | None = data["viewer"]
        return viewer
