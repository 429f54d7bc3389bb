/**
 * The HTTP server: the Orders API's handlers, its OpenAPI document
 * (`/openapi.json`) and Swagger UI (`/docs`), the operators' endpoints
 * (`/metrics`, `/health/live`, `/health/ready`), the web console
 * (`/console`), on Node's http server.
 */
import {
  HttpApiBuilder,
  HttpApiError,
  HttpApiSwagger,
  HttpBody,
  HttpMiddleware,
  HttpRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi
} from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { CommandHandler } from "@orders/domain/CommandHandler"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import { annotateSpan } from "@orders/domain/Tracing"
import { isOpsRequest, withOpsEndpoints } from "@orders/infra/OpsEndpoints"
import {
  Cause,
  Clock,
  Config,
  Effect,
  Exit,
  FiberRef,
  HashMap,
  Layer,
  Metric,
  MetricBoundaries,
  MetricLabel,
  Option,
  Schema
} from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer } from "node:http"
import { gzipSync } from "node:zlib"
import { ApiAccess, wwwAuthenticate } from "./Auth.js"
import { isConsoleRequest, makeConsole } from "./Console.js"
import { correlationIdOf, currentCorrelationId } from "./Correlation.js"
import { completeDocument, DocumentPaths, MaxBodyBytes, OrdersApi, Problems } from "./OrdersApi.js"
import { OrdersHandlers } from "./OrdersHandlers.js"
import type { PayloadTooLarge } from "./ProblemDetails.js"
import {
  InternalServerError,
  MethodNotAllowed,
  ProblemContentType,
  RouteNotFound,
  Unauthorized
} from "./ProblemDetails.js"
import { fromDecodeError, payloadTooLarge } from "./RequestBody.js"
import { allowedMethods, routeOf } from "./Routes.js"

const encodeProblem = Schema.encodeUnknown(Schema.Union(...Object.values(Problems)))

const pathOf = (request: HttpServerRequest.HttpServerRequest) => request.url.split("?")[0] ?? "/"

/** An error the API declares, as the problem document it is sent as, with the headers its status calls for. */
const problemResponse = (error: unknown, headers: Record<string, string> = {}) =>
  Effect.map(
    Effect.orDie(encodeProblem(error)),
    (problem) =>
      HttpServerResponse.unsafeJson(problem, {
        status: problem.status,
        contentType: ProblemContentType,
        headers: error instanceof Unauthorized ? { ...headers, "www-authenticate": wwwAuthenticate(error) } : headers
      })
  )

const unknownRoute = (request: HttpServerRequest.HttpServerRequest) => {
  const path = pathOf(request)
  const shownPath = path.length > 200 ? `${path.slice(0, 200)}…` : path
  const allow = allowedMethods(path)
  return allow.length === 0
    ? problemResponse(
      new RouteNotFound({
        method: request.method,
        path: shownPath,
        message: `no route for ${request.method} ${shownPath}`
      })
    )
    : problemResponse(
      new MethodNotAllowed({
        method: request.method,
        allow,
        message: `${request.method} is not allowed on ${shownPath}; allowed: ${allow.join(", ")}`
      }),
      { allow: allow.join(", ") }
    )
}

/**
 * Every failure becomes a problem document here, inside CORS, so that each
 * error carries its headers: the API's own errors as declared, the router's
 * 404 as a 404 or a 405, the library's decode errors as our 400. A defect is a
 * bug: logged at error level, answered with a 500 problem. A client that went
 * away gets nothing.
 */
const renderErrors = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<never, R> =>
  Effect.catchAllCause(app, (cause: Cause.Cause<unknown>) =>
    Effect.gen(function*() {
      // As it came: the platform tells a client that went away (499) by who interrupted.
      if (Cause.isInterruptedOnly(cause)) return yield* Effect.failCause(cause as Cause.Cause<never>)
      const request = yield* HttpServerRequest.HttpServerRequest
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        if (error instanceof HttpServerError.RouteNotFound) return yield* unknownRoute(request)
        if (error instanceof HttpApiError.HttpApiDecodeError) return yield* problemResponse(fromDecodeError(error))
        if (Schema.is(Schema.Union(...Object.values(Problems)))(error)) return yield* problemResponse(error)
      }
      yield* Effect.logError("request failed unexpectedly", cause).pipe(
        Effect.annotateLogs({ method: request.method, url: request.url.slice(0, 200) })
      )
      return yield* problemResponse(
        new InternalServerError({ message: "the server failed unexpectedly; the failure is logged" })
      )
    }))

/** Refused before the router reads anything: a declared body over the limit. */
const refuseLargeBodies = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E | PayloadTooLarge, R> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (Number(request.headers["content-length"] ?? 0) > MaxBodyBytes) return yield* payloadTooLarge()
    return yield* app
  })

const documents = new Set<string>(Object.values(DocumentPaths))

/** Swagger UI is 1.9 MB: its static page (and the document) are compressed once, when a client accepts gzip. */
const compressDocuments = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> => {
  const compressed = new WeakMap<Uint8Array, Uint8Array>()
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const path = pathOf(request)
    if (!documents.has(path) || !request.headers["accept-encoding"]?.includes("gzip")) {
      return app
    }
    return Effect.map(app, (response) => {
      const body = response.body
      if (response.status !== 200 || body._tag !== "Uint8Array") return response
      let gzipped = compressed.get(body.body)
      if (gzipped === undefined) {
        gzipped = gzipSync(body.body)
        compressed.set(body.body, gzipped)
      }
      return response.pipe(
        HttpServerResponse.setBody(HttpBody.uint8Array(gzipped, body.contentType)),
        HttpServerResponse.setHeaders({ "content-encoding": "gzip", vary: "Accept-Encoding" })
      )
    })
  })
}

/** As the original: any origin may call the API from a browser, and read the headers it answers with. */
const cors = HttpMiddleware.cors({
  allowedMethods: ["GET", "HEAD", "POST"],
  exposedHeaders: ["ETag", "Location", "Allow", "WWW-Authenticate"]
})

const Middleware = HttpApiBuilder.middleware(
  Effect.map(
    ApiAccess,
    (access) => (app) => cors(compressDocuments(renderErrors(Effect.zipRight(access.check, refuseLargeBodies(app)))))
  )
)

/** The API with the OpenAPI document it serves: completed, and with the security this server applies. */
export const ApiLive = Layer.unwrapEffect(Effect.map(ApiAccess, (access) =>
  HttpApiBuilder.api(
    OrdersApi.annotate(OpenApi.Transform, (spec) => access.document(completeDocument(spec)))
  ))).pipe(
    Layer.provide(OrdersHandlers),
    Layer.provide(Middleware)
  )

/** HTTP requests answered, by method, route and status. */
export const httpRequests = Metric.counter("orders_http_requests_total", {
  description: "HTTP requests answered, by method, route (as declared, or unknown) and status",
  incremental: true
})

/** How long requests took to answer, by method and route: 1 ms to 16 s, doubling. */
export const httpRequestDuration = Metric.histogram(
  "orders_http_request_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 15 }),
  "Time to answer an HTTP request, by method and route"
)

/** The declared route, not the path: the ids in paths would make a series per order. */
const routeLabel = (request: HttpServerRequest.HttpServerRequest) => routeOf(pathOf(request)) ?? "unknown"

/**
 * The series of one method and route (and status), made once: a tagged metric
 * hashes its labels each time it is made. Bounded: methods are the parser's,
 * routes the declared ones, statuses the API's.
 */
const seriesOf = <M>(make: (labels: ReadonlyArray<MetricLabel.MetricLabel>) => M) => {
  const made = new Map<string, M>()
  return (labels: Readonly<Record<string, string>>): M => {
    const key = Object.values(labels).join(" ")
    let series = made.get(key)
    if (series === undefined) {
      series = make(Object.entries(labels).map(([name, value]) => MetricLabel.make(name, value)))
      made.set(key, series)
    }
    return series
  }
}

const requestCounter = seriesOf((labels) => Metric.taggedWithLabels(httpRequests, labels))
const requestTimer = seriesOf((labels) => Metric.taggedWithLabels(httpRequestDuration, labels))

/**
 * Counts and times each request, and with `accessLog` logs it: one record
 * with the method, URL, status and time taken. A request that never got an
 * answer (the client went away) counts as 499. The record is written here
 * rather than by the platform's logger middleware, which named the time taken
 * `http.span.<n>`, a field of its own for every request. Either way the
 * record costs a read of the API about a fifth of its CPU (measured on the
 * native stack): `HTTP_ACCESS_LOG=false` saves it.
 */
const measure = (accessLog: boolean) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const { method } = request
    const route = routeLabel(request)
    return Effect.flatMap(Clock.currentTimeNanos, (start) =>
      annotateSpan({ "http.route": route }).pipe(
        Effect.zipRight(app),
        Effect.onExit((exit) =>
          Effect.flatMap(Clock.currentTimeNanos, (end) => {
            // A failure here is the platform's answer to an interruption: 499 when the client went away.
            const status = Exit.isSuccess(exit)
              ? exit.value.status
              : Cause.isInterruptedOnly(exit.cause)
              ? 499
              : HttpServerError.exitResponse(exit).status
            const seconds = Number(end - start) / 1e9
            const measured = Effect.zipRight(
              Metric.increment(requestCounter({ method, route, status: String(status) })),
              Metric.update(requestTimer({ method, route }), seconds)
            )
            return accessLog
              ? Effect.zipRight(
                measured,
                Effect.annotateLogs(Effect.logInfo("Sent HTTP response"), {
                  "http.method": method,
                  "http.url": request.url,
                  "http.status": status,
                  "http.duration_ms": Math.round(seconds * 1e4) / 10
                })
              )
              : measured
          })
        )
      ))
  })

/**
 * Every request gets a correlation id: the caller's `x-correlation-id`, else a
 * fresh one, which the handlers carry on the events, and every log record of
 * the request. Set, not scoped: each request runs in a fiber of its own.
 */
const correlate = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const correlationId = correlationIdOf(request.headers["x-correlation-id"])
    return Effect.zipRight(
      Effect.zipRight(
        FiberRef.set(currentCorrelationId, correlationId),
        FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set<string, unknown>("correlationId", correlationId))
      ),
      app
    )
  })

const serve = Layer.unwrapEffect(
  Effect.all([
    Config.boolean("HTTP_ACCESS_LOG").pipe(Config.withDefault(true)),
    makeConsole,
    FiberRef.get(FiberRef.currentTracerEnabled)
  ]).pipe(
    Effect.map(([accessLog, withConsole, tracing]) =>
      HttpApiBuilder.serve((app) => withOpsEndpoints(withConsole(correlate(measure(accessLog)(app)))))
        .pipe(
          // A span per request, named after its route, as OpenTelemetry names server spans; none for the operators'
          // probes, nor for the console's files and its lag figures, which it polls; none at all with tracing off,
          // where the platform would still build a no-op span for every request.
          HttpMiddleware.withSpanNameGenerator((request) => `${request.method} ${routeLabel(request)}`),
          HttpMiddleware.withTracerDisabledWhen((request) =>
            !tracing || isOpsRequest(request) || isConsoleRequest(request)
          )
        )
    )
  )
)

/** The HTTP server without its listener, for tests that bring their own (`NodeHttpServer.layerTest`). */
export const HttpAppLive = serve.pipe(
  Layer.provide(HttpApiSwagger.layer({ path: DocumentPaths.swaggerUi })),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: DocumentPaths.openApi })),
  Layer.provide(ApiLive),
  Layer.provide(CommandHandler.Default),
  Layer.provide(ApiAccess.Default),
  // find-my-way answers a path parameter over 100 characters with a 404: ids go to 128, and a longer one is a 400.
  Layer.provide(HttpRouter.setRouterConfig({ maxParamLength: 16 * 1024 }))
)

/** What a request gets while the server listens but has no handler yet, or no more. */
const notServing = JSON.stringify(
  Schema.encodeSync(Problems.ServiceUnavailable)(
    new ServiceUnavailable({ service: "orders", message: "the server is starting or stopping; retry" })
  )
)

/**
 * `NodeHttpServer` listens before the app's handler is attached (and detaches
 * it before it closes): a request that came in between would find no
 * listener and never be answered (seen in fault scenario 8, a restarted
 * server under load). Such a request gets a 503 with `Retry-After` instead.
 */
export const createGuardedServer = () => {
  const server = createServer()
  server.on("request", (_request: IncomingMessage, response: ServerResponse) => {
    if (server.listenerCount("request") > 1) return
    response.writeHead(503, { "content-type": ProblemContentType, "retry-after": "1", connection: "close" })
    response.end(notServing)
  })
  return server
}

const NodeServerLive = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* Config.port("PORT").pipe(Config.withDefault(8080))
  // Loopback unless told otherwise: a service on every interface is a decision, not a default.
  const host = yield* Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
  return NodeHttpServer.layer(createGuardedServer, { port, host })
}))

/** Listens on `HOST`:`PORT` (default 127.0.0.1:8080; `HOST=0.0.0.0` for every interface). */
export const HttpLive = HttpAppLive.pipe(HttpServer.withLogAddress, Layer.provide(NodeServerLive))
