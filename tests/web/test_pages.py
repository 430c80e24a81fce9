"""Each page in Chromium: loads with no console errors, shows the demo realms and NPCs, reacts
within 2 s to what happens through the API, renders untrusted names as text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from ..e2e.server_process import ADMIN, ServerProcess
from .conftest import PHONE, XSS_NAME, Watched, register

pytestmark = pytest.mark.e2e

REACT_MS = 2000  # the pages must show what happened within 2 s


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ----------------------------------------------------------------------------- dashboard


def test_dashboard_is_live_and_its_admin_actions_work(
    watched: Watched, server: ServerProcess
) -> None:
    page = watched.page
    watched.open("/")
    expect(page.locator("#ws-state")).to_have_text("live")
    realms = page.locator("#realms")
    expect(realms).to_contain_text("The Golden Dragon Tavern")
    expect(realms).to_contain_text("Whisperwood Forest")
    expect(page.locator("#feed")).to_contain_text("demo_", timeout=15_000)  # NPCs act alone
    expect(page.locator("#chart-tick canvas").first).to_be_visible()
    expect(page.locator("#c-tick")).to_have_text(re.compile(r"^\d+$"))
    first_tick = int(page.locator("#c-tick").inner_text())
    expect(page.locator("#c-tick")).not_to_have_text(str(first_tick))

    # through the API: a realm (named to attack the page) and an event show up within 2 s
    key = register(server, "dash_game", realm_id=XSS_NAME)
    expect(realms).to_contain_text(XSS_NAME, timeout=REACT_MS)
    sent = server.http.post(
        "/api/events",
        json={"event_type": "dash_ping", "target_game_id": "demo_tavern"},
        headers=bearer(key),
    )
    assert sent.status_code == 202
    expect(page.locator("#feed")).to_contain_text("dash_ping", timeout=REACT_MS)
    assert page.locator("img").count() == 0  # the name stayed text

    # the admin token, entered in the page and kept for the tab only
    watched.expect_error("status of 401")  # the browser logs the refused wrong token
    page.fill("#token", "wrong")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-message")).to_contain_text("not a valid token")
    page.fill("#token", server.admin()["Authorization"].split()[1])
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-message")).to_contain_text("admin token set")
    assert "token" not in page.url
    page.fill("#register-form [name=game_id]", "from_page")
    page.fill("#register-form [name=realm_id]", "Made In The Page")
    page.fill("#register-form [name=developer_name]", "tester")
    page.click("#register-form button[type=submit]")
    expect(page.locator("#register-message")).to_contain_text("registered from_page")
    expect(realms).to_contain_text("Made In The Page", timeout=REACT_MS)
    page.select_option("#publish-source", "from_page")
    page.select_option("#publish-target", "demo_forest")
    page.fill("#publish-form [name=event_type]", "hello_from_page")
    page.click("#publish-form button[type=submit]")
    expect(page.locator("#publish-message")).to_contain_text("accepted")
    expect(page.locator("#feed")).to_contain_text("hello_from_page", timeout=REACT_MS)
    page.fill("#publish-form [name=data]", "{not json")
    page.click("#publish-form button[type=submit]")
    expect(page.locator("#publish-message")).to_contain_text("not valid JSON")
    unregister = page.locator("#realms tr[data-game-id=dash_game] button")
    unregister.click()
    expect(unregister).to_have_text("sure?")
    unregister.click()
    expect(realms).not_to_contain_text(XSS_NAME, timeout=REACT_MS)

    watched.screenshot("dashboard-1280x800")
    page.set_viewport_size(PHONE)
    fits = f"() => document.documentElement.scrollWidth <= {PHONE['width'] + 1}"
    try:  # the charts follow the new width once their resize observer has run
        page.wait_for_function(fits, timeout=5000)
    except PlaywrightTimeout:
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
                .slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className)"""
        )
        raise AssertionError(f"the dashboard scrolls sideways on a phone: {wide}") from None
    watched.screenshot("dashboard-phone")


def test_a_dropped_connection_resumes_without_losing_or_repeating_events(
    watched: Watched, server: ServerProcess
) -> None:
    page = watched.page
    key = register(server, "resume_game")
    watched.open("/")
    expect(page.locator("#ws-state")).to_have_text("live")
    page.evaluate("() => seedmmoDashboard.connection.drop()")
    expect(page.locator("#ws-state")).to_contain_text("reconnecting")
    for n in range(3):  # published while the page is away
        sent = server.http.post("/api/events", json={"event_type": f"gap_{n}"}, headers=bearer(key))
        assert sent.status_code == 202
    expect(page.locator("#ws-state")).to_have_text("live")
    feed = page.locator("#feed li")
    for n in range(3):
        expect(feed.filter(has_text=f"gap_{n}")).to_have_count(1)


def test_dashboard_is_also_at_its_report_name(watched: Watched) -> None:
    watched.open("/phase6c_dashboard.html")
    expect(watched.page.locator("h1")).to_have_text("seedmmo admin dashboard")
    expect(watched.page.locator("#realms")).to_contain_text("demo_forest")


# ----------------------------------------------------------------------------- the 3D map


def map_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "() => ({realms: seedmmoMap.realmCount(), entities: seedmmoMap.entityCount(),"
        " arcs: seedmmoMap.arcCount(), pixels: seedmmoMap.pixels()})"
    )
    return state


def test_map_draws_realms_npcs_events_and_travel(watched: Watched, server: ServerProcess) -> None:
    page = watched.page
    watched.open("/stat7threejs.html")
    expect(page.locator("#ws-state")).to_have_text("live")
    page.wait_for_function("() => window.seedmmoMap && seedmmoMap.entityCount() >= 6")
    page.wait_for_function("() => seedmmoMap.pixels().lit > 2000")  # the canvas really renders
    before = map_state(page)
    assert before["realms"] >= 2
    labels = page.locator("#labels")
    expect(labels).to_contain_text("The Golden Dragon Tavern")

    key = register(server, "map_game", realm_id=XSS_NAME, adjacency="cluster_far")
    page.wait_for_function(
        f"() => seedmmoMap.realmCount() === {before['realms'] + 1}", timeout=REACT_MS
    )
    expect(labels).to_contain_text(XSS_NAME, timeout=REACT_MS)
    assert page.locator("#labels img").count() == 0
    page.wait_for_function(f"() => seedmmoMap.pixels().hash !== {before['pixels']['hash']}")

    sent = server.http.post(
        "/api/events",
        json={"event_type": "map_ping", "target_game_id": "demo_forest"},
        headers=bearer(key),
    )
    assert sent.status_code == 202
    page.wait_for_function("() => seedmmoMap.arcCount() > 0", timeout=REACT_MS)

    # a player walks from the new realm to the tavern: drawn, then moving, then there
    ada = server.http.post(
        "/api/entities", json={"kind": "player", "name": "Ada"}, headers=bearer(key)
    ).json()
    page.wait_for_function(
        f"() => seedmmoMap.entityCount() === {before['entities'] + 1}", timeout=REACT_MS
    )
    trip = server.http.post(
        f"/api/entities/{ada['id']}/travel",
        json={"to_game_id": "demo_tavern", "duration_ticks": 40},
        headers=bearer(key),
    )
    assert trip.status_code == 202
    page.wait_for_function(
        f"() => seedmmoMap.travelling().includes({ada['id']!r})", timeout=REACT_MS
    )

    where = page.evaluate("() => seedmmoMap.screenPosition('realm', 'demo_tavern')")
    page.mouse.click(where["x"], where["y"])  # click the node, as a person would
    details = page.locator("#details")
    expect(details).to_be_visible()
    expect(details).to_contain_text("The Golden Dragon Tavern")
    expect(details).to_contain_text("address")
    expect(page.locator("#hud-fps")).to_have_text(re.compile(r"^\d+$"))
    watched.screenshot("map-1280x800")
    watched.screenshot("map-phone", viewport=PHONE)


# ----------------------------------------------------------------------------- entity viewer


def test_entity_viewer_filters_details_and_live_updates(
    watched: Watched, server: ServerProcess
) -> None:
    page = watched.page
    watched.open("/admin-entity-viewer.html")
    expect(page.locator("#ws-state")).to_have_text("live")
    rows = page.locator("#rows")
    expect(rows).to_contain_text("Brannoc the Barkeep")
    expect(rows).to_contain_text("Greyfang")

    page.fill("#filters [name=q]", "songweaver")
    page.click("#filters button[type=submit]")
    expect(rows.locator("tr")).to_have_count(1)
    rows.locator("tr").first.click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("npc_tavern_bard")
    expect(detail).to_contain_text("stat7://narrative/")
    expect(page.locator("#detail-history li").first).to_be_visible()

    page.click("#filters button[type=reset]")
    page.select_option("#filters [name=kind]", "npc")
    page.fill("#filters [name=density_min]", "0.55")
    page.click("#filters button[type=submit]")
    expect(page.locator("#total")).to_have_text("3")  # barkeep 0.8, merchant 0.6, druid 0.6
    watched.expect_error("status of 422")  # the refused filter
    page.fill("#filters [name=density_min]", "2")
    page.click("#filters button[type=submit]")
    expect(page.locator("#filter-message")).to_contain_text("density_min")

    # a realm and an entity created through the API appear within 2 s
    page.click("#filters button[type=reset]")
    key = register(server, "viewer_game")
    expect(page.locator("#realm-filter")).to_contain_text("viewer_game", timeout=REACT_MS)
    created = server.http.post(
        "/api/entities", json={"kind": "player", "name": XSS_NAME}, headers=bearer(key)
    )
    assert created.status_code == 201
    expect(rows).to_contain_text(XSS_NAME, timeout=REACT_MS)
    assert page.locator("#rows img").count() == 0
    watched.screenshot("viewer-1280x800")
    watched.screenshot("viewer-phone", viewport=PHONE)


@pytest.mark.parametrize("path", ["/", "/stat7threejs.html", "/admin-entity-viewer.html"])
def test_pages_load_nothing_from_elsewhere(watched: Watched, path: str) -> None:
    """Offline: every request a page makes goes to its own server."""
    requested: list[str] = []
    watched.page.on("request", lambda request: requested.append(request.url))
    watched.open(path)
    expect(watched.page.locator("#ws-state")).to_have_text("live")
    assert requested and all(url.startswith(watched.base) for url in requested), requested


# ----------------------------------------------------------------------------- /docs


def test_api_docs_render_the_servers_openapi_from_vendored_files(
    watched: Watched, server: ServerProcess
) -> None:
    """/docs is Swagger UI from the package's own files, on /openapi.json: every request goes
    to this server, the content-security policy lets it run, and the operations are listed."""
    requested: list[str] = []
    watched.page.on("request", lambda request: requested.append(request.url))
    watched.open("/docs")
    page = watched.page
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("seedmmo")
    expect(page.locator(".opblock-summary-path", has_text="/api/events").first).to_be_visible()
    operations = page.locator(".opblock").count()
    index = server.http.get("/api").json()
    assert operations == len(index["endpoints"])  # every endpoint the index lists is there
    assert all(url.startswith(watched.base) for url in requested), requested
    assert any(url.endswith("/openapi.json") for url in requested)
    watched.screenshot("docs-1280x800")
    watched.screenshot("docs-phone", viewport=PHONE)


# ----------------------------------------------------------------------------- map at scale


def test_map_places_realms_stably_and_its_labels_never_overlap(
    watched: Watched, server: ServerProcess
) -> None:
    """Registering a realm moves no other; with many realms (long names, one cluster) on a
    phone-sized screen, the names shown do not overlap."""
    page = watched.page
    watched.open("/stat7threejs.html")
    expect(page.locator("#ws-state")).to_have_text("live")
    moved = page.evaluate(
        """async () => {
          const { placeRealms } = await import('/projection.js');
          const realm = (id, cluster) => ({ game_id: id, realm_coordinate: { adjacency: cluster },
            stat7: { resonance: 0.1, velocity: -0.2, density: 0.5, horizon: 'peak' } });
          const few = [realm('a', 'c1'), realm('b', 'c1'), realm('z', 'c2')];
          const before = placeRealms(few);
          const after = placeRealms([...few, realm('m', 'c1'), realm('n', 'c3')]);
          const key = (places, r) => JSON.stringify(places[r.game_id]);
          const same = (r) => key(before, r) === key(after, r);
          return few.filter((r) => !same(r)).map((r) => r.game_id);
        }"""
    )
    assert moved == []
    # the page has loaded every realm there is (its first load runs after "live"): counting
    # before that would expect too few
    count = len(server.http.get("/api/realms").json()["realms"])
    page.wait_for_function(f"() => seedmmoMap.realmCount() === {count}", timeout=REACT_MS)
    for n in range(30):
        register(server, f"crowd_{n:02d}", realm_id=f"A realm with a long name number {n}")
    page.wait_for_function(f"() => seedmmoMap.realmCount() === {count + 30}", timeout=REACT_MS)
    for viewport in (PHONE, {"width": 1280, "height": 800}):
        page.set_viewport_size(viewport)
        # two frames drawn at the new size: the labels have followed
        page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('#labels .label')]
                 .filter((l) => l.style.display !== 'none')
                 .map((l) => { const r = l.getBoundingClientRect();
                               return [r.left, r.top, r.right, r.bottom]; })"""
        )
        assert len(boxes) >= 3, boxes  # (some names are shown)
        overlaps = [
            (a, b)
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        ]
        assert overlaps == [], viewport
    watched.screenshot("map-crowded-phone", viewport=PHONE)
    watched.screenshot("map-crowded-1280x800", viewport={"width": 1280, "height": 800})


# ----------------------------------------------------------------------------- players


def test_pages_show_avatars_their_player_and_the_audit_log(
    watched: Watched, server: ServerProcess
) -> None:
    """The dashboard shows the audit log once the admin token is entered; the entity viewer
    shows an avatar's player, reputation and (for the admin) inventory; the map marks it."""
    key = register(server, "players_game")
    made = server.http.post("/api/items", json={"name": "gold"}, headers=bearer(key))
    assert made.status_code == 201, made.text
    credentials = {"username": "web_ada", "password": "correct horse battery"}
    player_id = server.http.post("/api/players", json=credentials).json()["player_id"]
    token = server.http.post("/api/players/login", json=credentials).json()["token"]
    avatar = {"kind": "player", "name": "Web Ada", "player_token": token}
    assert server.http.post("/api/entities", json=avatar, headers=bearer(key)).status_code == 201
    grant = {"op": "grant", "item": "players_game:gold", "qty": 3, "idempotency_key": "web"}
    path = f"/api/players/{player_id}"
    assert server.http.post(f"{path}/inventory", json=grant, headers=bearer(key)).is_success
    standing = {"faction": "players_game", "delta": 150, "reason": "helped out"}
    assert server.http.post(f"{path}/reputation", json=standing, headers=bearer(key)).is_success

    page = watched.page
    watched.open("/")
    expect(page.locator("#audit-panel")).to_be_hidden()
    page.fill("#token", ADMIN)
    page.click("#token-form button[type=submit]")
    audit = page.locator("#audit")
    expect(audit).to_contain_text("player_signed_up")
    expect(audit).to_contain_text(f"login by player:{player_id}")
    assert token not in audit.inner_text()
    watched.screenshot("dashboard-audit-1280x800")

    watched.open("/admin-entity-viewer.html")  # (the admin token is this tab's)
    page.fill("#filters [name=q]", "Web Ada")
    page.click("#filters button[type=submit]")
    page.locator("#rows tr").first.click()
    player = page.locator("#detail-player")
    expect(player).to_be_visible()
    expect(player).to_contain_text("web_ada")
    expect(page.locator("#player-reputation")).to_contain_text("friendly")
    expect(page.locator("#player-inventory")).to_contain_text("players_game:gold")
    watched.screenshot("viewer-player-1280x800")
    watched.screenshot("viewer-player-phone", viewport=PHONE)

    watched.open("/stat7threejs.html")
    page.wait_for_function(f"() => seedmmoMap.avatars().includes({player_id!r})")
