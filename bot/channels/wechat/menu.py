"""The Official Account's custom menu: a YAML file -> checked -> ``menu/create`` JSON.

```yaml
button:
  - {name: 查流量, type: click, key: "kb:12"}
  - name: 更多
    sub_button:
      - {name: 帮助, type: click, key: 帮助}
      - {name: 官网, type: view, url: "https://example.com"}
```

``click`` keys reach the bot as menu clicks: an action (``kb:<id>``, ``human``) or a
command word. WeChat's limits (3 buttons, 5 sub-buttons, name lengths in bytes) are
checked here so a mistake is reported before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ButtonType = Literal[
    "click",
    "view",
    "miniprogram",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
]


class MenuError(ValueError):
    """The menu file is unreadable or breaks WeChat's rules; the message says where."""


def _bytes_at_most(value: str, limit: int, what: str) -> str:
    if len(value.encode("utf-8")) > limit:
        raise ValueError(f"{what} is longer than {limit} bytes")
    return value


class SubButton(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    type: ButtonType
    key: str | None = None
    url: str | None = None
    appid: str | None = None
    pagepath: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _bytes_at_most(v, 60, "sub-button name")

    @model_validator(mode="after")
    def _target(self) -> "SubButton":
        if self.type == "view":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("a view button needs an http(s) url")
            _bytes_at_most(self.url, 1024, "url")
        elif self.type == "miniprogram":
            if not (self.url and self.appid and self.pagepath):
                raise ValueError("a miniprogram button needs url, appid and pagepath")
        else:
            if not self.key:
                raise ValueError(f"a {self.type} button needs a key")
            _bytes_at_most(self.key, 128, "key")
        return self


class TopButton(SubButton):
    type: ButtonType | None = None  # type: ignore[assignment]
    sub_button: list[SubButton] = Field(default_factory=list, max_length=5)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _bytes_at_most(v, 16, "button name")

    @model_validator(mode="after")
    def _target(self) -> "TopButton":
        if self.sub_button:
            if self.type or self.key or self.url:
                raise ValueError("a button with sub_button takes no type, key or url")
            return self
        if self.type is None:
            raise ValueError("a button needs a type, or a sub_button list")
        return SubButton._target(self)  # type: ignore[arg-type, return-value]


class Menu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    button: list[TopButton] = Field(min_length=1, max_length=3)

    def to_wechat(self) -> dict[str, Any]:
        """The ``menu/create`` body."""
        return {"button": [_dump(b) for b in self.button]}


def _dump(button: SubButton) -> dict[str, Any]:
    data = {k: v for k, v in button.model_dump(exclude_none=True).items() if k != "sub_button"}
    subs = getattr(button, "sub_button", None)
    if subs:
        data["sub_button"] = [_dump(s) for s in subs]
    return data


def load_menu(path: Path) -> Menu:
    """Read and check a menu file; :class:`MenuError` names the first problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MenuError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise MenuError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MenuError(f"{path}: the file must be a mapping with a 'button' list")
    try:
        return Menu.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "menu"
        raise MenuError(f"{path}: {where}: {first['msg']}") from None
