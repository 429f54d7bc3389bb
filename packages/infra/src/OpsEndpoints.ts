/**
 * The endpoints operators and their tools call, beside any API: `GET
 * /metrics` (Prometheus text format), `GET /health/live` and `GET
 * /health/ready`. They answer before anything else a server does: no tokens,
 * no CORS, no access log, no trace. The server answers them on its own port;
 * the processor, which has no API, on a small listener of its own.
 */
import type { HttpApp } from "@effect/platform"
import { HttpMiddleware, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Health } from "./Health.js"
import { prometheusContentType, prometheusText } from "./Telemetry.js"

const endpoints: Readonly<Record<string, Effect.Effect<HttpServerResponse.HttpServerResponse>>> = {
  "/metrics": Effect.map(
    prometheusText,
    (text) => HttpServerResponse.text(text, { contentType: prometheusContentType })
  ),
  "/health/live": Effect.succeed(HttpServerResponse.unsafeJson({ status: "live" })),
  "/health/ready": Effect.flatMap(Health, (health) => health.readiness).pipe(
    Effect.map(({ checks, ready }) =>
      HttpServerResponse.unsafeJson({ status: ready ? "ready" : "not ready", checks }, { status: ready ? 200 : 503 })
    )
  )
}

/** The endpoint a request is for, if it is a GET or HEAD of one of them. */
const endpointOf = (request: HttpServerRequest.HttpServerRequest) =>
  request.method === "GET" || request.method === "HEAD" ? endpoints[request.url.split("?")[0] ?? ""] : undefined

/** Whether `request` is one of these endpoints': for the platform's tracer to leave it out. */
export const isOpsRequest = (request: HttpServerRequest.HttpServerRequest): boolean => endpointOf(request) !== undefined

/** Answers the operators' endpoints, and passes every other request to `app`. */
export const withOpsEndpoints = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => endpointOf(request) ?? app)

const notFound = Effect.succeed(HttpServerResponse.unsafeJson({ status: 404, title: "Not Found" }, { status: 404 }))

/**
 * The endpoints alone, on `HOST`:`METRICS_PORT` (default 127.0.0.1:9464; 0
 * takes any free port, as tests running several processors do), for a
 * program without an HTTP server of its own.
 */
export const OpsServerLive = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* Config.integer("METRICS_PORT").pipe(
    Config.withDefault(9464),
    Config.validate({ message: "must be a port, 0 to 65535", validation: (n) => n >= 0 && n <= 65535 })
  )
  const host = yield* Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
  return HttpServer.serve(withOpsEndpoints(notFound)).pipe(
    HttpMiddleware.withTracerDisabledWhen(() => true),
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(createServer, { port, host }))
  )
}))
