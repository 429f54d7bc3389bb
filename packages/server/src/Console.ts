/**
 * The web console at `/console`: a page that lists the orders as the read
 * model has them, shows an order's events and its state at each version,
 * creates orders and requests processing through the API, and shows how far
 * the read model is behind the event store.
 *
 * Mounted beside the API, as `/metrics` is, on exact paths only:
 * - its files, from `packages/server/console/` and lit-html's package, read
 *   once at start and answered with an ETag. They hold no data, so they need
 *   no token: the page sends the user's token with its calls to the API. A
 *   GET of `/console` shadows `GET /:id` for an order whose id is `console`,
 *   as `/docs` does for `docs` (`/console/events` and `POST /console` still
 *   reach it);
 * - `GET /console/lag`, the lag figures as JSON (see `lagFigures`).
 */
import type { HttpApp } from "@effect/platform"
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Metric, MetricState } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { readFile } from "node:fs/promises"
import { findPackageJSON } from "node:module"
import { extname } from "node:path"
import { pathToFileURL } from "node:url"
import { ProjectorGroup } from "./Projector.js"

const pageDirectory = new URL("../console/", import.meta.url)

/** The page's own files, by the path each is served at. */
const pageFiles: Readonly<Record<string, string>> = {
  "/console": "index.html",
  "/console/console.js": "console.js",
  "/console/api.js": "api.js",
  "/console/console.css": "console.css",
  "/console/favicon.svg": "favicon.svg"
}

/**
 * The parts of lit-html the page imports, from the package's root: its
 * browser build (Node's resolution would pick the server build in `node/`).
 * They import one another by relative paths, so they keep their layout.
 */
const litHtmlFiles = ["lit-html.js", "directive.js", "directive-helpers.js", "directives/repeat.js"]
const litHtmlPath = "/console/vendor/lit-html/"

const LagPath = "/console/lag"

/** Every path the console answers (GET and HEAD). */
export const ConsolePaths: ReadonlyArray<string> = [
  ...Object.keys(pageFiles),
  ...litHtmlFiles.map((file) => litHtmlPath + file),
  LagPath
]

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

/** Nothing but this server's own files and API: no inline script or style, no other origin, no framing. */
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

interface Asset {
  readonly body: Uint8Array
  readonly contentType: string
  readonly headers: Readonly<Record<string, string>>
}

const load = (file: URL, extraHeaders: Readonly<Record<string, string>> = {}): Effect.Effect<Asset> =>
  Effect.map(Effect.promise(() => readFile(file)), (body) => ({
    body,
    contentType: contentTypes[extname(file.pathname)] ?? "application/octet-stream",
    headers: {
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
      // Revalidated on each use: the paths carry no version, and a revalidation costs a 304.
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      ...extraHeaders
    }
  }))

/** The names the metrics are declared with (OutboxRelay.ts, Projector.ts, EventBusKafka.ts). */
const MetricNames = {
  outboxEntries: "orders_outbox_entries",
  outboxOldestAge: "orders_outbox_oldest_age_seconds",
  projectionLag: "orders_projection_lag_seconds",
  consumerLag: "orders_consumer_lag"
} as const

/**
 * `GET /console/lag`: how far the read model is behind the event store, as
 * this server's metrics have it (what `/metrics` serves, as JSON, computed
 * by nothing here):
 * - `outbox`: appends not yet published to the bus and the age in seconds of
 *   the oldest, for the whole store (the relay measures them every 15 s);
 *   null where the store cannot tell, as the in-memory one cannot;
 * - `projection`: this server's projector's `orders_projection_lag_seconds`
 *   (an event's append to the read-model write that applied it): events,
 *   their total and largest lag in seconds since the server started; null
 *   before its first event. The page divides the change of the total by the
 *   change of the count between two looks: the mean lag of recent events;
 * - `consumer`: messages on the Kafka partitions this server's projector
 *   holds that it has not consumed yet (measured every 10 s); null without
 *   Kafka;
 * - `instance`: which server answered, so that the page compares counts of
 *   the same one when several run behind one address.
 */
const lagFigures = (instance: string, projectorGroup: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const named = (name: string) => pairs.filter((pair) => pair.metricKey.name === name)
    const gauge = (name: string) => {
      const found = named(name).map((pair) => pair.metricState).filter(MetricState.isGaugeState)
      return found.length === 0 ? null : found.reduce((total, state) => total + Number(state.value), 0)
    }
    const entries = gauge(MetricNames.outboxEntries)
    const oldestAgeSeconds = gauge(MetricNames.outboxOldestAge)
    const histograms = named(MetricNames.projectionLag).map((pair) => pair.metricState).filter(
      MetricState.isHistogramState
    )
    const events = histograms.reduce((total, state) => total + state.count, 0)
    const partitions = named(MetricNames.consumerLag).filter((pair) =>
      pair.metricKey.tags.some((tag) => tag.key === "group" && tag.value === projectorGroup)
    ).map((pair) => pair.metricState).filter(MetricState.isGaugeState)
    return {
      instance,
      outbox: entries === null ? null : { entries, oldestAgeSeconds: oldestAgeSeconds ?? 0 },
      projection: events === 0 ? null : {
        events,
        totalSeconds: histograms.reduce((total, state) => total + state.sum, 0),
        maxSeconds: Math.max(...histograms.map((state) => state.max))
      },
      consumer: partitions.length === 0 ? null : {
        messages: partitions.reduce((total, state) => total + Number(state.value), 0),
        partitions: partitions.length
      }
    }
  })

const isConsolePath = (pathname: string) => ConsolePaths.includes(pathname)

const pathOf = (request: HttpServerRequest.HttpServerRequest) => request.url.split("?")[0] ?? "/"

/** Whether `request` is for the console: for the tracer to leave it out, as it leaves out `/metrics`. */
export const isConsoleRequest = (request: HttpServerRequest.HttpServerRequest): boolean =>
  (request.method === "GET" || request.method === "HEAD") && isConsolePath(pathOf(request))

/** Loads the console's files, and answers with them and the lag figures, passing every other request to the app. */
export const makeConsole = Effect.gen(function*() {
  const litHtmlManifest = yield* Effect.sync(() => findPackageJSON("lit-html", import.meta.url))
  if (litHtmlManifest === undefined) return yield* Effect.dieMessage("lit-html is not installed: run pnpm install")
  const litHtmlRoot = pathToFileURL(litHtmlManifest)
  const assets = new Map<string, Asset>(
    yield* Effect.all([
      ...Object.entries(pageFiles).map(([path, file]) =>
        Effect.map(
          load(
            new URL(file, pageDirectory),
            path === "/console"
              ? { "content-security-policy": contentSecurityPolicy, "referrer-policy": "no-referrer" }
              : {}
          ),
          (asset) => [path, asset] as const
        )
      ),
      ...litHtmlFiles.map((file) =>
        Effect.map(load(new URL(file, litHtmlRoot)), (asset) => [litHtmlPath + file, asset] as const)
      )
    ])
  )
  const lag = lagFigures(randomUUID(), yield* ProjectorGroup)

  const answer = (request: HttpServerRequest.HttpServerRequest, path: string) => {
    if (path === LagPath) {
      return Effect.map(lag, (figures) =>
        HttpServerResponse.unsafeJson(figures, {
          headers: { "cache-control": "no-store", "x-content-type-options": "nosniff" }
        }))
    }
    const asset = assets.get(path)!
    return Effect.succeed(
      request.headers["if-none-match"] === asset.headers.etag
        ? HttpServerResponse.empty({ status: 304, headers: asset.headers })
        : HttpServerResponse.uint8Array(asset.body, { contentType: asset.contentType, headers: asset.headers })
    )
  }

  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(
      HttpServerRequest.HttpServerRequest,
      (request) => isConsoleRequest(request) ? answer(request, pathOf(request)) : app
    )
})
