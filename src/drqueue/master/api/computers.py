"""Computers (slaves) and pools: reads for everyone, changes for admins."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drqueue.master.api.deps import MAX_PAGE, Admin, Auth, MasterDep, PageLimit
from drqueue.master.api.shapes import JSONBytesResponse
from drqueue.models import PathName

router = APIRouter(prefix="/api/v1", default_response_class=JSONBytesResponse)


def _printable_text(value: str) -> str:
    """Free text shown in a terminal (a pool's description): no control characters."""
    if any(not line.isprintable() for line in value.split("\n")):
        raise ValueError("must not hold control characters or escape codes")
    return value


class LimitIn(BaseModel):
    model_config = ConfigDict(strict=True)
    max_tasks: int | None = Field(None, ge=0, le=10_000)


class PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: PathName
    description: Annotated[str, Field(max_length=1000), AfterValidator(_printable_text)] = ""


class MemberIn(BaseModel):
    model_config = ConfigDict(strict=True)
    computer: PathName


@router.get("/computers")
def computers(_: Auth, m: MasterDep, limit: PageLimit = MAX_PAGE) -> list[dict[str, Any]]:
    """The first *limit* computers by name, each with its online state and running tasks."""
    return [m.computer_out(c) for c in m.store.list_computers()[:limit]]


@router.get("/computers/{name}")
def computer(name: str, _: Auth, m: MasterDep) -> dict[str, Any]:
    return m.computer_out(m.store.get_computer(name))


@router.post("/computers/{name}/{action}")
def computer_action(
    name: str, action: Literal["enable", "disable"], who: Admin, m: MasterDep
) -> dict[str, Any]:
    m.store.update_computer(name, enabled=action == "enable", actor=who.name)
    m.wake()
    return m.computer_out(m.store.get_computer(name))


@router.put("/computers/{name}/limit")
def computer_limit(name: str, body: LimitIn, who: Admin, m: MasterDep) -> dict[str, Any]:
    m.store.update_computer(name, max_tasks=body.max_tasks, actor=who.name)
    m.wake()
    return m.computer_out(m.store.get_computer(name))


@router.get("/pools")
def pools(_: Auth, m: MasterDep, limit: PageLimit = MAX_PAGE) -> list[dict[str, Any]]:
    """The first *limit* pools by name."""
    return m.store.list_pools()[:limit]


@router.post("/pools", status_code=201)
def create_pool(body: PoolIn, who: Admin, m: MasterDep) -> dict[str, Any]:
    m.store.create_pool(body.name, body.description, actor=who.name)
    return {"name": body.name}


@router.delete("/pools/{name}")
def delete_pool(name: str, who: Admin, m: MasterDep) -> dict[str, Any]:
    m.store.delete_pool(name, actor=who.name)
    m.wake()  # the dispatcher's cached pool membership is stale
    return {"deleted": name}


@router.post("/pools/{name}/members")
def add_member(name: str, body: MemberIn, who: Admin, m: MasterDep) -> dict[str, Any]:
    m.store.set_pool_member(name, body.computer, True, actor=who.name)
    m.wake()
    return {"pool": name, "computer": body.computer}


@router.delete("/pools/{name}/members/{computer}")
def remove_member(name: str, computer: str, who: Admin, m: MasterDep) -> dict[str, Any]:
    m.store.set_pool_member(name, computer, False, actor=who.name)
    m.wake()  # the dispatcher's cached pool membership is stale
    return {"pool": name, "computer": computer, "removed": True}
