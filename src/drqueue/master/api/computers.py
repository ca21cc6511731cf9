"""Computers (slaves) and pools: reads for everyone, changes for admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drqueue.api_types import Computer, Deleted, Pool, PoolCreated, PoolMember
from drqueue.master.api.deps import AUTHED, MAX_PAGE, Admin, Auth, MasterDep, PageLimit, answers
from drqueue.master.api.shapes import JSONBytesResponse
from drqueue.models import PathName

router = APIRouter(
    prefix="/api/v1", default_response_class=JSONBytesResponse, responses=answers(*AUTHED)
)


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


@router.get("/computers", response_model=list[Computer])
def computers(_: Auth, m: MasterDep, limit: PageLimit = MAX_PAGE) -> JSONBytesResponse:
    """The first *limit* computers by name, each with its online state and running tasks."""
    return JSONBytesResponse([m.computer_out(c) for c in m.store.list_computers()[:limit]])


@router.get("/computers/{name}", response_model=Computer, responses=answers(404))
def computer(name: str, _: Auth, m: MasterDep) -> JSONBytesResponse:
    return JSONBytesResponse(m.computer_out(m.store.get_computer(name)))


@router.post("/computers/{name}/{action}", response_model=Computer, responses=answers(404))
def computer_action(
    name: str, action: Literal["enable", "disable"], who: Admin, m: MasterDep
) -> JSONBytesResponse:
    m.store.update_computer(name, enabled=action == "enable", actor=who.name)
    m.wake()
    return JSONBytesResponse(m.computer_out(m.store.get_computer(name)))


@router.put("/computers/{name}/limit", response_model=Computer, responses=answers(404, 413))
def computer_limit(name: str, body: LimitIn, who: Admin, m: MasterDep) -> JSONBytesResponse:
    m.store.update_computer(name, max_tasks=body.max_tasks, actor=who.name)
    m.wake()
    return JSONBytesResponse(m.computer_out(m.store.get_computer(name)))


@router.get("/pools", response_model=list[Pool])
def pools(_: Auth, m: MasterDep, limit: PageLimit = MAX_PAGE) -> JSONBytesResponse:
    """The first *limit* pools by name."""
    return JSONBytesResponse(m.store.list_pools()[:limit])


@router.post("/pools", status_code=201, response_model=PoolCreated, responses=answers(409, 413))
def create_pool(body: PoolIn, who: Admin, m: MasterDep) -> JSONBytesResponse:
    m.store.create_pool(body.name, body.description, actor=who.name)
    return JSONBytesResponse({"name": body.name}, status_code=201)


@router.delete("/pools/{name}", response_model=Deleted, responses=answers(404))
def delete_pool(name: str, who: Admin, m: MasterDep) -> JSONBytesResponse:
    m.store.delete_pool(name, actor=who.name)
    m.wake()  # the dispatcher's cached pool membership is stale
    return JSONBytesResponse({"deleted": name})


@router.post("/pools/{name}/members", response_model=PoolMember, responses=answers(404, 413))
def add_member(name: str, body: MemberIn, who: Admin, m: MasterDep) -> JSONBytesResponse:
    m.store.set_pool_member(name, body.computer, True, actor=who.name)
    m.wake()
    return JSONBytesResponse({"pool": name, "computer": body.computer})


@router.delete(
    "/pools/{name}/members/{computer}", response_model=PoolMember, responses=answers(404)
)
def remove_member(name: str, computer: str, who: Admin, m: MasterDep) -> JSONBytesResponse:
    m.store.set_pool_member(name, computer, False, actor=who.name)
    m.wake()  # the dispatcher's cached pool membership is stale
    return JSONBytesResponse({"pool": name, "computer": computer, "removed": True})
