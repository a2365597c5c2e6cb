"""The console in a real browser (Debian's Chromium, driven by Playwright).

Run by `.ci/console` against a `tenantry serve` it starts (on SQLite, then on PostgreSQL):
    BASE=http://127.0.0.1:PORT KEY=<bootstrap key> SHOTS=<dir> python console_test.py

It signs in as an operator, creates a tenant, issues a key, signs in as that tenant's admin,
creates an agent, appends messages with usage through the API, and sees the usage chart and
the quota bar change; filters the audit log; finds another tenant's pages refused (403); sees
the purge confirmation refuse a wrong slug; checks that every form control has a label, that
the main flows work from the keyboard, and that nothing breaks the Content-Security-Policy.
A screenshot of each page goes to SHOTS.
"""

import json
import os
import re
import sys
import urllib.request
import uuid

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["BASE"]
KEY = os.environ["KEY"]
SHOTS = os.environ.get("SHOTS", "target/console-screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
RUN = uuid.uuid4().hex[:6]


def api(method, path, key, body=None):
    """A call of the JSON API, as an agent runtime would make it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def unlabelled_controls(page):
    """Form controls a screen reader could not name."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden')
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )


def check_page(page, name):
    assert not unlabelled_controls(page), (name, unlabelled_controls(page))
    shot(page, name)


def sign_in_with_keyboard(page, credential):
    page.goto(BASE + "/console/sign-in")
    # The field has focus on load; typing and Enter sign in, no mouse needed.
    expect(page.get_by_label("API key or token")).to_be_focused()
    page.keyboard.type(credential)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/(tenants|t/[0-9a-f-]{36})$"))


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/console/sign-in"))


def tokens_today(page):
    bars = page.locator("#usage-per-day rect.bar")
    return sum(float(bars.nth(i).get_attribute("data-value")) for i in range(bars.count()))


def quota_used(page, limit):
    return int(page.locator(f'.figures[data-limit="{limit}"]').get_attribute("data-used"))


def main():
    slug = f"browser-{RUN}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        csp_errors = []
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)

        # The operator signs in (from the keyboard) and sees the tenants page.
        page.goto(BASE + "/console/sign-in")
        check_page(page, "sign-in")
        sign_in_with_keyboard(page, KEY)
        expect(page).to_have_url(re.compile("/console/tenants"))
        expect(page.get_by_role("heading", name="Tenants", exact=True)).to_be_visible()

        # Creates a tenant with the form.
        page.get_by_label("Slug", exact=True).fill(slug)
        page.get_by_label("Name", exact=True).fill("Browser <b>Co</b>")
        page.get_by_label("Plan", exact=True).select_option("professional")
        page.get_by_role("button", name="Create tenant").click()
        expect(page).to_have_url(re.compile(r"/console/t/[0-9a-f-]{36}$"))
        tenant = page.url.rsplit("/", 1)[1]
        # The name is text, not markup.
        expect(page.locator("nav.tenant .tenant-name")).to_contain_text("Browser <b>Co</b>")
        page.goto(BASE + f"/console/tenants?q={slug}")
        expect(page.locator("tbody tr")).to_have_count(1)
        check_page(page, "operator-tenants")

        # The read models page and the partners and operators pages open for the operator.
        for name, path in [("operator-projections", "/console/projections"),
                           ("operator-partners", "/console/partners"),
                           ("operator-operators", "/console/operators")]:
            page.goto(BASE + path)
            assert page.locator("h1").count() == 1
            check_page(page, name)

        # Issues a tenant admin's key; the secret is shown once.
        page.goto(BASE + f"/console/t/{tenant}/keys")
        page.get_by_label("Name", exact=True).fill("console admin")
        page.get_by_label("Role", exact=True).select_option("admin")
        page.get_by_role("button", name="Issue key").click()
        admin_key = page.locator("#secret").inner_text().strip()
        assert admin_key.startswith("tnt_") or len(admin_key) > 20, admin_key
        check_page(page, "operator-key-issued")
        page.goto(BASE + f"/console/t/{tenant}/keys")
        assert admin_key not in page.content()
        sign_out(page)

        # The tenant's admin signs in with that key and lands on its overview.
        sign_in_with_keyboard(page, admin_key)
        expect(page).to_have_url(re.compile(f"/console/t/{tenant}$"))
        before_chart = tokens_today(page)
        before_quota = quota_used(page, "tokens_per_month")
        agents_before = quota_used(page, "max_agents")

        # Creates an agent with the form.
        page.goto(BASE + f"/console/t/{tenant}/agents")
        page.get_by_label("Name", exact=True).fill("Support bot")
        page.get_by_label(re.compile("^Model")).fill("gpt-4o")
        page.get_by_label("System prompt", exact=True).fill("You help {{tenant.name}}'s customers.")
        page.get_by_role("button", name="Create agent").click()
        expect(page.locator("tbody")).to_contain_text("Support bot")
        check_page(page, "tenant-agents")

        # An agent runtime appends messages with usage through the API.
        status, agents = api("GET", f"/v1/tenants/{tenant}/agents", admin_key)
        agent = agents["items"][0]["id"]
        status, conv = api("POST", f"/v1/tenants/{tenant}/conversations", admin_key,
                           {"agent_id": agent, "title": "Where is my order?"})
        assert status in (201, 202), (status, conv)
        for i in range(3):
            status, body = api("POST", f"/v1/tenants/{tenant}/conversations/{conv['id']}/messages", admin_key,
                               {"role": "assistant", "content": f"Answer {i}", "model": "gpt-4o",
                                "usage": {"prompt_tokens": 100, "completion_tokens": 50}})
            assert status in (201, 202), (status, body)

        # The overview's chart and quota bar show the 450 tokens.
        page.goto(BASE + f"/console/t/{tenant}")
        # Read models catch up on their own; the page shows them as they stand.
        for _ in range(100):
            if (tokens_today(page) >= before_chart + 450
                    and quota_used(page, "tokens_per_month") >= before_quota + 450):
                break
            page.wait_for_timeout(100)
            page.reload()
        assert tokens_today(page) == before_chart + 450, tokens_today(page)
        assert quota_used(page, "tokens_per_month") == before_quota + 450
        assert quota_used(page, "max_agents") == agents_before + 1
        expect(page.locator("#usage-per-model")).to_contain_text("gpt-4o")
        expect(page.locator("#tokens-this-month")).to_have_text("450")
        check_page(page, "tenant-overview")

        # Conversations and a thread.
        page.goto(BASE + f"/console/t/{tenant}/conversations")
        check_page(page, "tenant-conversations")
        page.get_by_role("link", name="Where is my order?").click()
        expect(page.locator("ol.messages li")).to_have_count(3)
        check_page(page, "tenant-conversation")

        # The audit log, filtered by action.
        page.goto(BASE + f"/console/t/{tenant}/audit")
        check_page(page, "tenant-audit")
        all_rows = page.locator("tbody tr").count()
        page.get_by_label("Action", exact=True).fill("agent.created")
        page.get_by_label("Action", exact=True).press("Enter")
        expect(page).to_have_url(re.compile("action=agent.created"))
        rows = page.locator("tbody tr")
        assert 1 <= rows.count() < all_rows, (rows.count(), all_rows)
        for i in range(rows.count()):
            expect(rows.nth(i).locator("td").nth(2)).to_have_text("agent.created")

        # The other pages of the tenant open for its admin.
        for name in ["tools", "users", "keys", "settings"]:
            page.goto(BASE + f"/console/t/{tenant}/{name}")
            assert page.locator("main h1").count() == 1
            check_page(page, f"tenant-{name}")

        # Another tenant's pages are refused.
        status, other = api("POST", "/v1/tenants", KEY, {"slug": f"other-{RUN}", "name": "Other"})
        assert status in (201, 202), (status, other)
        response = page.goto(BASE + f"/console/t/{other['id']}")
        assert response.status == 403, response.status
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        assert f"other-{RUN}" not in page.content()
        check_page(page, "tenant-other-refused")
        sign_out(page)

        # The operator's purge confirmation refuses a wrong slug; the tenant stays.
        sign_in_with_keyboard(page, KEY)
        page.goto(BASE + f"/console/t/{tenant}")
        page.get_by_label(re.compile("to confirm")).last.fill(slug + "x")
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Purge tenant").click()
        assert navigation.value.status == 422, navigation.value.status
        expect(page.locator(".problem")).to_contain_text("does not match")
        check_page(page, "operator-purge-refused")
        status, still = api("GET", f"/v1/tenants/{tenant}", KEY)
        assert status == 200 and still["status"] == "active", (status, still)

        assert not csp_errors, csp_errors
        browser.close()
    print(f"console browser test passed; screenshots in {SHOTS}")


if __name__ == "__main__":
    sys.exit(main())
