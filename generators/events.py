"""Realistic, reproducible click events, fast enough never to hold the producer back.

Faker is slow (tens of microseconds a call), so it is called only while the
pools are built (users, user agents, IPs, products, referrers...); events are
then drawn from the pools with one seeded ``random.Random``. Same seed and same
start time give the same events, event ids included.

The traffic model: a fixed number of concurrent sessions, each a user on one
device (one OS, browser, user agent and IP) walking through a shop. A heap
yields the session whose next click is due first, so events come out in event
time order overall and each session's timestamps advance. The simulated
traffic runs at ``rate`` events per second of event time.
"""

from __future__ import annotations

import heapq
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, count
from typing import Any

from faker import Faker

from clickfan.events import DEVICES, SCHEMA_VERSION, validate_event

__all__ = ["EventGenerator", "Pools", "validate_event"]

SITE = "https://shop.example.com"

# (Faker locale, ISO country, share of users)
_LOCALES = (
    ("en_US", "US", 30),
    ("ko_KR", "KR", 15),
    ("ja_JP", "JP", 8),
    ("en_GB", "GB", 8),
    ("de_DE", "DE", 8),
    ("en_IN", "IN", 7),
    ("fr_FR", "FR", 6),
    ("pt_BR", "BR", 6),
    ("es_ES", "ES", 4),
    ("it_IT", "IT", 4),
    ("nl_NL", "NL", 4),
)
_DEVICE_WEIGHTS = {"mobile": 55, "desktop": 38, "tablet": 7}
_SEARCH_ENGINES = (
    "https://www.google.com/",
    "https://search.naver.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
)

# Which events happen on which page. Cart events need a non-empty cart; login
# and logout are decided per session, outside these tables.
_EVENTS_ON_PAGE: dict[str, dict[str, int]] = {
    "home": {"page_view": 55, "click": 30, "search": 15},
    "category": {"page_view": 50, "click": 35, "search": 15},
    "product": {"page_view": 50, "click": 30, "add_to_cart": 15, "search": 5},
    "search": {"page_view": 60, "click": 30, "search": 10},
    "cart": {"page_view": 45, "click": 20, "remove_from_cart": 25},
    "checkout": {"purchase": 60, "page_view": 25, "click": 15},
    "account": {"page_view": 70, "click": 30},
}
_NEEDS_CART = frozenset({"remove_from_cart", "purchase"})
# Where a page view from a page goes.
_NEXT_PAGE: dict[str, dict[str, int]] = {
    "home": {"category": 45, "product": 35, "home": 5, "cart": 5, "account": 10},
    "category": {"product": 70, "category": 20, "home": 10},
    "product": {"product": 40, "category": 20, "cart": 25, "home": 10, "checkout": 5},
    "search": {"product": 80, "category": 10, "home": 10},
    "cart": {"checkout": 60, "product": 25, "home": 15},
    "checkout": {"home": 50, "product": 30, "cart": 20},
    "account": {"home": 60, "category": 40},
}
_LANDING = {"home": 40, "product": 35, "category": 20, "search": 5}
_CLICK_ELEMENTS = {
    "home": ("div.hero-banner > a", "nav a.category-link", "a.product-card", "a#logo"),
    "category": (
        "a.product-card",
        "select#sort-order",
        "input.filter-checkbox",
        "button.load-more",
    ),
    "product": ("img.product-image", "button.size-option", "a#reviews-tab", "a.related-product"),
    "search": ("a.search-result", "button.next-page", "input.filter-checkbox", "select#sort-order"),
    "cart": ("input.quantity", "a#continue-shopping", "button#apply-coupon", "button#checkout"),
    "checkout": ("input#shipping-address", "select#payment-method", "input#card-number"),
    "account": ("a#order-history", "button#edit-profile", "a#wishlist"),
}
_EVENT_ELEMENTS = {
    "add_to_cart": "button#add-to-cart",
    "remove_from_cart": "button.remove-item",
    "purchase": "button#place-order",
    "search": "input#search-box",
    "login": "button#login-submit",
    "logout": "a#logout",
}
_FIXED_PAGES = {
    "home": "/",
    "cart": "/cart",
    "checkout": "/checkout",
    "account": "/account",
}
_LOGGED_IN_AT_START = 0.4  # "remember me" cookies
_LOGIN_CHANCE = 0.04  # per event while logged out
_LOGOUT_AT_END = 0.3  # most people just close the tab
_MEAN_SESSION_EVENTS = 12


class _Table:
    """A weighted choice, with cumulative weights computed once."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.values = tuple(weights)
        self.cum = tuple(accumulate(weights.values()))


def _tables(weights: dict[str, dict[str, int]]) -> dict[str, _Table]:
    return {key: _Table(w) for key, w in weights.items()}


_EVENT_TABLES = _tables(_EVENTS_ON_PAGE)
_EVENT_TABLES_EMPTY_CART = _tables(
    {
        page: {e: w for e, w in ws.items() if e not in _NEEDS_CART}
        for page, ws in _EVENTS_ON_PAGE.items()
    }
)
_NEXT_PAGE_TABLES = _tables(_NEXT_PAGE)
_LANDING_TABLE = _Table(_LANDING)
_DEVICE_TABLE = _Table(_DEVICE_WEIGHTS)

# (pattern, value), first match wins: iPad before Mac OS X, Edge/Opera before Chrome...
_UA_OS = (
    (re.compile(r"iPad|iPhone|iPod"), "iOS"),
    (re.compile(r"Android"), "Android"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"Macintosh|Mac OS X"), "macOS"),
    (re.compile(r"Linux|X11"), "Linux"),
)
_UA_BROWSER = (
    (re.compile(r"Edg/"), "Edge"),
    (re.compile(r"Opera|OPR/"), "Opera"),
    (re.compile(r"MSIE|Trident"), "Internet Explorer"),
    (re.compile(r"CriOS|Chrome"), "Chrome"),
    (re.compile(r"FxiOS|Firefox"), "Firefox"),
    (re.compile(r"Safari"), "Safari"),
)


def classify_user_agent(ua: str) -> tuple[str, str, str] | None:
    """(device, os, browser) of a user agent string, or None when unknown."""
    os_name = next((name for pattern, name in _UA_OS if pattern.search(ua)), None)
    browser = next((name for pattern, name in _UA_BROWSER if pattern.search(ua)), None)
    if os_name is None or browser is None:
        return None
    if "iPad" in ua:
        device = "tablet"
    elif os_name in ("iOS", "Android"):
        device = "mobile"
    else:
        device = "desktop"
    return device, os_name, browser


@dataclass(frozen=True)
class User:
    user_id: str
    country: str
    city: str
    is_vip: bool


@dataclass(frozen=True)
class Pools:
    """Everything Faker contributes, built once."""

    users: tuple[User, ...]
    # device -> (user_agent, os, browser)
    user_agents: dict[str, tuple[tuple[str, str, str], ...]]
    ips: tuple[str, ...]
    categories: tuple[str, ...]
    products: tuple[str, ...]
    search_terms: tuple[str, ...]
    external_referrers: tuple[str, ...]

    @classmethod
    def build(cls, seed: int, users: int = 10000, vip_fraction: float = 0.1) -> Pools:
        if users < 1:
            raise ValueError(f"users must be at least 1, got {users}")
        if not 0.0 <= vip_fraction <= 1.0:
            raise ValueError(f"vip_fraction must be within 0..1, got {vip_fraction}")
        rng = random.Random(seed)
        fakers = {}
        for i, (locale, _, _) in enumerate(_LOCALES):
            fakers[locale] = Faker(locale)
            fakers[locale].seed_instance(seed * 100 + i)
        fake = fakers["en_US"]

        cities = {locale: [f.city() for _ in range(200)] for locale, f in fakers.items()}
        locale_table = _Table({locale: weight for locale, _, weight in _LOCALES})
        country_of = {locale: country for locale, country, _ in _LOCALES}
        user_list = []
        for n in rng.sample(range(10**8), users):
            (locale,) = rng.choices(locale_table.values, cum_weights=locale_table.cum)
            user_list.append(
                User(
                    user_id=f"u{n:08d}",
                    country=country_of[locale],
                    city=rng.choice(cities[locale]),
                    is_vip=rng.random() < vip_fraction,
                )
            )

        return cls(
            users=tuple(user_list),
            user_agents=_user_agent_pools(fake),
            ips=tuple(fake.unique.ipv4_public() for _ in range(5000)),
            categories=tuple(fake.unique.word() for _ in range(40)),
            products=tuple(f"{fake.word()}-{fake.word()}-{1000 + i}" for i in range(2000)),
            search_terms=tuple(fake.word() for _ in range(500)),
            external_referrers=_SEARCH_ENGINES + tuple(fake.url() for _ in range(200)),
        )


def _user_agent_pools(
    fake: Faker, per_device: int = 150
) -> dict[str, tuple[tuple[str, str, str], ...]]:
    pools: dict[str, list[tuple[str, str, str]]] = {device: [] for device in DEVICES}
    for _ in range(50 * per_device * len(DEVICES)):
        ua = fake.user_agent()
        found = classify_user_agent(ua)
        if found is not None and len(pools[found[0]]) < per_device:
            pools[found[0]].append((ua, found[1], found[2]))
        if all(len(p) == per_device for p in pools.values()):
            break
    if not all(pools.values()):
        raise RuntimeError("Faker gave no user agent for some device; cannot build the pools")
    return {device: tuple(p) for device, p in pools.items()}


class _Session:
    __slots__ = (
        "user",
        "session_id",
        "device",
        "os",
        "browser",
        "user_agent",
        "ip",
        "page",
        "page_url",
        "referrer",
        "cart",
        "logged_in",
        "remaining",
    )


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class EventGenerator:
    """An endless, seeded stream of click events (dicts in schema field order).

    ``rate`` is the simulated traffic in events per second of event time: set it
    to the produce rate and event times keep pace with the wall clock.
    """

    def __init__(
        self,
        seed: int,
        *,
        start_time: datetime | None = None,
        rate: float = 100.0,
        users: int = 10000,
        vip_fraction: float = 0.1,
        pools: Pools | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if start_time is None:
            start_time = datetime.now(UTC)
        if start_time.tzinfo is None:
            raise ValueError("start_time must carry a time zone")
        self.seed = seed
        self.start_time = start_time
        self.pools = pools if pools is not None else Pools.build(seed, users, vip_fraction)
        # a different stream than the pools', so pools can be shared between generators
        self._rng = random.Random(f"events-{seed}")
        self._seq = count()
        self._second_cache: dict[int, str] = {}
        # Concurrency grows with the rate but stays bounded; the think time
        # between two clicks of one session then sets the overall rate.
        self._sessions = max(10, min(5000, int(rate * 5)))
        self._think_ms = 1000.0 * self._sessions / rate
        start_ms = int(start_time.timestamp() * 1000)
        self._heap: list[tuple[int, int, _Session]] = []
        for _ in range(self._sessions):
            self._schedule(start_ms + int(self._rng.random() * self._think_ms), self._new_session())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return self.next_event()

    def take(self, n: int) -> list[dict[str, Any]]:
        return [self.next_event() for _ in range(n)]

    def next_event(self) -> dict[str, Any]:
        rng = self._rng
        t, _, s = heapq.heappop(self._heap)
        event_type = self._advance(s)
        s.remaining -= 1
        if event_type == "logout" or s.remaining <= 0:
            # a new visitor takes the place, keeping concurrency steady
            self._schedule(t + int(rng.expovariate(1.0 / self._think_ms)), self._new_session())
        else:
            self._schedule(t + 200 + int(rng.expovariate(1.0 / self._think_ms)), s)
        user = s.user
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self._uuid4(),
            "event_time": self._format_ms(t),
            "user_id": user.user_id,
            "session_id": s.session_id,
            "event_type": event_type,
            "page_url": s.page_url,
            "referrer": s.referrer,
            "element": self._element(s, event_type),
            "device": s.device,
            "os": s.os,
            "browser": s.browser,
            "user_agent": s.user_agent,
            "ip": s.ip,
            "country": user.country,
            "city": user.city,
            "is_vip": user.is_vip,
        }

    # -- sessions --------------------------------------------------------

    def _schedule(self, at_ms: int, session: _Session) -> None:
        heapq.heappush(self._heap, (at_ms, next(self._seq), session))

    def _new_session(self) -> _Session:
        rng, pools = self._rng, self.pools
        s = _Session()
        s.user = rng.choice(pools.users)
        s.session_id = f"s-{rng.getrandbits(64):016x}"
        (s.device,) = rng.choices(_DEVICE_TABLE.values, cum_weights=_DEVICE_TABLE.cum)
        s.user_agent, s.os, s.browser = rng.choice(pools.user_agents[s.device])
        s.ip = rng.choice(pools.ips)
        s.page = ""  # not landed yet: the first event is the landing page view
        s.page_url = ""
        s.referrer = None
        s.cart = 0
        s.logged_in = rng.random() < _LOGGED_IN_AT_START
        s.remaining = 1 + int(rng.expovariate(1.0 / _MEAN_SESSION_EVENTS))
        return s

    def _advance(self, s: _Session) -> str:
        """Pick the session's next event type and move its state along."""
        rng = self._rng
        if not s.page:
            referrer = rng.choice(self.pools.external_referrers) if rng.random() < 0.6 else None
            self._go_to(s, self._pick(_LANDING_TABLE), referrer)
            return "page_view"
        if s.remaining == 1 and s.logged_in and rng.random() < _LOGOUT_AT_END:
            s.logged_in = False
            return "logout"
        if not s.logged_in and rng.random() < _LOGIN_CHANCE:
            s.logged_in = True
            return "login"
        tables = _EVENT_TABLES if s.cart else _EVENT_TABLES_EMPTY_CART
        event_type = self._pick(tables[s.page])
        if event_type == "page_view":
            self._go_to(s, self._pick(_NEXT_PAGE_TABLES[s.page]), s.page_url)
        elif event_type == "search":
            self._go_to(s, "search", s.page_url)
        elif event_type == "add_to_cart":
            s.cart += 1
        elif event_type == "remove_from_cart":
            s.cart -= 1
        elif event_type == "purchase":
            s.cart = 0
        return event_type

    def _go_to(self, s: _Session, page: str, referrer: str | None) -> None:
        rng, pools = self._rng, self.pools
        if page == "product":
            path = "/p/" + rng.choice(pools.products)
        elif page == "category":
            path = "/c/" + rng.choice(pools.categories)
        elif page == "search":
            path = "/search?q=" + rng.choice(pools.search_terms)
        else:
            path = _FIXED_PAGES[page]
        s.page, s.page_url, s.referrer = page, SITE + path, referrer

    def _element(self, s: _Session, event_type: str) -> str | None:
        if event_type == "page_view":
            return None
        if event_type == "click":
            return self._rng.choice(_CLICK_ELEMENTS[s.page])
        return _EVENT_ELEMENTS[event_type]

    def _pick(self, table: _Table) -> str:
        return self._rng.choices(table.values, cum_weights=table.cum)[0]

    # -- formatting ------------------------------------------------------

    def _uuid4(self) -> str:
        # uuid.uuid4() reads os.urandom and cannot be seeded; this is the same
        # layout (version 4, RFC 4122 variant) from the seeded generator.
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def _format_ms(self, ms: int) -> str:
        seconds, millis = divmod(ms, 1000)
        prefix = self._second_cache.get(seconds)
        if prefix is None:
            if len(self._second_cache) > 10000:
                self._second_cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second_cache[seconds] = prefix
        return f"{prefix}.{millis:03d}Z"
