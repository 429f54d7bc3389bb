/**
 * The web console (`/console`) against the embedded system (in-memory
 * adapters, projector, relay and processor): over HTTP, and in a real
 * browser, Debian's Chromium driven by playwright-core. Takes the screenshot
 * that the README shows (docs/console.png, with UPDATE_SCREENSHOT=1).
 */
import { HttpServer } from "@effect/platform"
import { expect, layer } from "@effect/vitest"
import { consumerLag } from "@orders/infra/EventBusKafka"
import { Effect, Metric } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Page } from "playwright-core"
import { chromium } from "playwright-core"
import { outboxEntries, outboxOldestAge } from "../src/OutboxRelay.js"
import { apiSystem } from "./support/apiSystem.js"

const chromiumPath = "/usr/bin/chromium"
/** The README's screenshot is rewritten only when asked (`UPDATE_SCREENSHOT=1 pnpm test`): a test run changes no file. */
const screenshotPath = process.env.UPDATE_SCREENSHOT === "1"
  ? fileURLToPath(new URL("../../../docs/console.png", import.meta.url))
  : join(tmpdir(), `orders-console-${process.pid}.png`)
/** Every wait of the browser's ends by then. */
const waitMs = 15_000
const laptop = { width: 1280, height: 800 }
const phone = { width: 390, height: 844 }

const baseUrl = Effect.map(
  HttpServer.HttpServer,
  (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
)

/** Chromium for the Scope, closed (within a time limit) at its end. Never a downloaded browser: Debian's. */
const browser = Effect.acquireRelease(
  Effect.suspend(() =>
    existsSync(chromiumPath)
      ? Effect.promise(() =>
        chromium.launch({
          executablePath: chromiumPath,
          headless: true,
          timeout: waitMs,
          // Without these, Chromium stalls on this machine's closed network.
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run"
          ]
        })
      )
      : Effect.dieMessage(`${chromiumPath} is missing: apt-get install chromium`)
  ),
  (chromium) => Effect.promise(() => chromium.close()).pipe(Effect.timeout("10 seconds"), Effect.ignore)
)

/**
 * What the page did wrong: script errors, console errors (a refused script or
 * style under the Content-Security-Policy is one), a request to another origin
 * or a console file that failed. The API's refusals are not: the page shows them.
 */
const watchPage = (page: Page, origin: string) => {
  const faults: Array<string> = []
  page.on("pageerror", (error) => faults.push(`script error: ${error.message}`))
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      faults.push(`console error: ${message.text()}`)
    }
  })
  page.on("request", (request) => {
    if (!request.url().startsWith(`${origin}/`)) faults.push(`request to another origin: ${request.url()}`)
  })
  page.on("response", (response) => {
    if (new URL(response.url()).pathname.startsWith("/console") && response.status() >= 400) {
      faults.push(`${response.url()} answered ${response.status()}`)
    }
  })
  return faults
}

/** Presses Tab until `focused` (a page expression) is true; fails after `presses` presses. */
const tabUntil = async (page: Page, focused: string, presses: number) => {
  for (let pressed = 0; pressed < presses; pressed++) {
    await page.keyboard.press("Tab")
    if (await page.evaluate(focused)) return
  }
  throw new Error(`${presses} presses of Tab never focused: ${focused}`)
}

const postOrder = (origin: string, id: string, name: string) =>
  fetch(`${origin}/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id, name })
  })

layer(apiSystem({ PROCESSING_DELAY: "300 millis" }), { excludeTestServices: true })("the web console", (it) => {
  it.scoped(
    "creates, processes and travels back through an order, and shows the API's refusals",
    () =>
      Effect.gen(function*() {
        const origin = yield* baseUrl
        const chromium = yield* browser
        yield* Effect.promise(async () => {
          mkdirSync(dirname(screenshotPath), { recursive: true })
          expect((await postOrder(origin, "lamp-2", "Desk lamp")).status).toBe(201)

          const page = await chromium.newPage({ viewport: laptop })
          page.setDefaultTimeout(waitMs)
          const faults = watchPage(page, origin)
          await page.goto(`${origin}/console`)
          await page.evaluate("window.notReloaded = true")

          // Create from the page: the list shows it, and it opens.
          await page.getByLabel("Id", { exact: true }).fill("bike-1")
          await page.getByLabel("Name", { exact: true }).fill("Blue bicycle")
          await page.getByRole("button", { name: "Create order" }).click()
          await page.getByRole("status").filter({ hasText: "Created order bike-1 (version 1)." }).waitFor()
          const row = page.getByRole("row").filter({ has: page.getByRole("link", { name: "bike-1", exact: true }) })
          await row.locator(".status").filter({ hasText: /^new$/ }).waitFor()

          // Open it from the list, request processing, and watch it processed, live.
          await page.getByRole("link", { name: "bike-1", exact: true }).click()
          await page.getByRole("heading", { name: "Order bike-1" }).waitFor()
          await page.getByRole("button", { name: "Request processing" }).click()
          await row.locator(".status").filter({ hasText: /^processed$/ }).waitFor()
          expect(await page.evaluate("window.notReloaded")).toBe(true)

          // The timeline, from the event store.
          await page.locator(".timeline li").nth(2).waitFor()
          expect(await page.locator(".timeline .event-type").allTextContents()).toEqual([
            "OrderCreated",
            "OrderProcessingRequested",
            "OrderProcessed"
          ])
          expect(await page.locator(".timeline .event-version").allTextContents()).toEqual(["v1", "v2", "v3"])
          await page.locator(".sync").filter({ hasText: "event store: version 3 · caught up" }).waitFor()

          // Back in time: version 1 was "new".
          await page.getByRole("button", { name: "Earlier version" }).click()
          await page.getByRole("button", { name: "Earlier version" }).click()
          await page.getByRole("heading", { name: "State at version 1" }).waitFor()
          await page.locator(".state .status").filter({ hasText: /^new$/ }).waitFor()
          expect(await page.getByRole("button", { name: "Earlier version" }).isDisabled()).toBe(true)
          await page.getByRole("button", { name: "Later version" }).click()
          await page.locator(".state .status").filter({ hasText: /^processing$/ }).waitFor()

          await page.locator("#lag-projection").filter({ hasText: "since the server started" }).waitFor()
          await page.screenshot({ path: screenshotPath, fullPage: true })

          // A refusal, in the API's words.
          await page.getByLabel("Id", { exact: true }).fill("bike-1")
          await page.getByLabel("Name", { exact: true }).fill("Blue bicycle, again")
          await page.getByRole("button", { name: "Create order" }).click()
          const refusal = page.locator("[aria-labelledby=create-heading] [role=alert]")
          await refusal.waitFor()
          const problem = (await (await postOrder(origin, "bike-1", "Blue bicycle, again")).json()) as {
            title: string
            detail: string
          }
          expect(await refusal.locator(".problem-title").textContent()).toBe(problem.title)
          expect(await refusal.locator(".problem-detail").textContent()).toBe(problem.detail)
          expect(await refusal.textContent()).toContain("(HTTP 409)")

          await page.setViewportSize(phone)
          expect(
            await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
          ).toBe(0)
          expect(faults).toEqual([])
        })
      }),
    90_000
  )

  it.scoped(
    "can be used with the keyboard alone: Tab to the form, Enter to create, Tab and Enter to open",
    () =>
      Effect.gen(function*() {
        const origin = yield* baseUrl
        const chromium = yield* browser
        yield* Effect.promise(async () => {
          const page = await chromium.newPage({ viewport: laptop })
          page.setDefaultTimeout(waitMs)
          const faults = watchPage(page, origin)
          await page.goto(`${origin}/console`)
          await page.getByRole("heading", { name: "Orders", exact: true }).waitFor()

          await tabUntil(page, "document.activeElement?.id === 'new-id'", 10)
          await page.keyboard.type("keys-1")
          await page.keyboard.press("Tab")
          expect(await page.evaluate("document.activeElement?.id")).toBe("new-name")
          await page.keyboard.type("Typed with keys")
          await page.keyboard.press("Enter")
          await page.getByRole("status").filter({ hasText: "Created order keys-1" }).waitFor()

          await tabUntil(page, "document.activeElement?.getAttribute('href') === '#order/keys-1'", 40)
          await page.keyboard.press("Enter")
          expect(await page.evaluate("document.activeElement?.id")).toBe("order-heading")
          await page.getByRole("heading", { name: "Order keys-1" }).waitFor()
          expect(faults).toEqual([])
        })
      }),
    60_000
  )
  it.effect("is served beside the API: its files with an ETag and a strict CSP, without shadowing more than GET /console", () =>
    Effect.gen(function*() {
      const origin = yield* baseUrl
      yield* Effect.promise(async () => {
        const page = await fetch(`${origin}/console`)
        expect(page.status).toBe(200)
        expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
        expect(page.headers.get("content-security-policy")).toContain("script-src 'self';")
        expect(await page.text()).not.toMatch(/<script(?![^>]*\bsrc=)/)

        const litHtml = await fetch(`${origin}/console/vendor/lit-html/lit-html.js`)
        expect(litHtml.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
        expect(await litHtml.text()).toContain("export{")
        const etag = litHtml.headers.get("etag")!
        expect(
          (await fetch(`${origin}/console/vendor/lit-html/lit-html.js`, { headers: { "if-none-match": etag } }))
            .status
        ).toBe(304)

        expect((await fetch(`${origin}/console/console.js`, { method: "POST" })).status).toBe(405)

        // The order called "console" keeps its events and its commands: only `GET /console` is the page's.
        expect((await postOrder(origin, "console", "named like the page")).status).toBe(201)
        const events = await fetch(`${origin}/console/events`)
        expect(events.status).toBe(200)
        expect(((await events.json()) as Array<{ type: string }>).map((event) => event.type)).toEqual(["OrderCreated"])
        expect((await fetch(`${origin}/console`, { method: "POST" })).status).toBe(202)
      })
    }))

  it.effect("answers the lag figures as the declared metrics hold them: the outbox's, and the projector group's on Kafka", () =>
    Effect.gen(function*() {
      const origin = yield* baseUrl
      const lagFigures = Effect.promise(async () => {
        const answer = await fetch(`${origin}/console/lag`)
        expect(answer.headers.get("content-type")).toBe("application/json")
        return (await answer.json()) as { instance: string }
      })
      const before = yield* lagFigures
      expect(before).toMatchObject({ instance: expect.any(String), outbox: null, consumer: null })

      // What the relay over MongoDB and the consumers on Kafka report; the in-memory adapters report neither.
      yield* Metric.set(outboxEntries, 2)
      yield* Metric.set(outboxOldestAge, 1.5)
      const partition = (group: string, partition: number) =>
        consumerLag.pipe(
          Metric.tagged("group", group),
          Metric.tagged("topic", "orders"),
          Metric.tagged("partition", String(partition))
        )
      yield* Metric.set(partition("orders.projector", 0), 3)
      yield* Metric.set(partition("orders.projector", 1), 4)
      yield* Metric.set(partition("orders.processor", 0), 100)
      expect(yield* lagFigures).toMatchObject({
        instance: before.instance,
        outbox: { entries: 2, oldestAgeSeconds: 1.5 },
        consumer: { messages: 7, partitions: 2 }
      })
    }))
})

layer(apiSystem({ API_TOKENS: "console-secret", API_TOKENS_FOR_QUERIES: "true" }), { excludeTestServices: true })(
  "the web console, where the API needs a token",
  (it) => {
    it.scoped(
      "is served without one (its files hold no data), and sends the token the user pastes",
      () =>
        Effect.gen(function*() {
          const origin = yield* baseUrl
          const chromium = yield* browser
          yield* Effect.promise(async () => {
            expect((await fetch(`${origin}/?limit=1`)).status).toBe(401)
            for (const path of ["/console", "/console/console.js", "/console/lag"]) {
              expect((await fetch(`${origin}${path}`)).status, path).toBe(200)
            }

            const page = await chromium.newPage({ viewport: laptop })
            page.setDefaultTimeout(waitMs)
            const faults = watchPage(page, origin)
            await page.goto(`${origin}/console`)
            const listProblem = page.locator("[aria-labelledby=orders-heading] [role=alert] .problem-title")
            await listProblem.filter({ hasText: "Unauthorized" }).waitFor()

            await page.getByLabel("API token").fill("console-secret")
            await page.getByRole("button", { name: "Use token" }).click()
            await listProblem.waitFor({ state: "detached" })
            await page.getByLabel("Id", { exact: true }).fill("with-token")
            await page.getByLabel("Name", { exact: true }).fill("Sent with the token")
            await page.getByRole("button", { name: "Create order" }).click()
            await page.getByRole("link", { name: "with-token", exact: true }).waitFor()
            expect(faults).toEqual([])
          })
        }),
      60_000
    )
  }
)
