/**
 * The HTTP server: the Orders API's handlers, its OpenAPI document
 * (`/openapi.json`) and Swagger UI (`/docs`), on Node's http server.
 */
import {
  HttpApiBuilder,
  HttpApiError,
  HttpApiSwagger,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { CommandHandler } from "@orders/domain/CommandHandler"
import { Config, Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import { MaxBodyBytes, OrdersApi, PayloadTooLarge } from "./OrdersApi.js"
import { OrdersHandlers } from "./OrdersHandlers.js"

/** One line naming each invalid field once (a union reports one issue per member: the first says enough). */
const describeIssues = (issues: HttpApiError.HttpApiDecodeError["issues"]) => {
  const byField = new Map<string, string>()
  for (const issue of issues) {
    const field = issue.path.length === 0 ? "body" : issue.path.join(".")
    if (!byField.has(field)) byField.set(field, `${field}: ${issue.message}`)
  }
  return [...byField.values()].join("; ")
}

const isMalformedBody = (defect: unknown): defect is HttpServerError.RequestError =>
  defect instanceof HttpServerError.RequestError && defect.reason === "Decode"

/**
 * Bad requests answered as such: a body over 64 KiB gets a 413 before it is
 * read, an unknown route a JSON 404, and every 400 says what is wrong in one
 * line naming the fields, with the structured issues beside it. Out of the box
 * a body that is not JSON gets an empty 400 and a payload error a multi-line
 * tree.
 */
const BadRequests = HttpApiBuilder.middleware(OrdersApi, (app) =>
  HttpServerRequest.HttpServerRequest.pipe(
    // Refused before reading: past the limit while reading, Node can only drop the connection.
    Effect.filterOrFail(
      (request) => Number(request.headers["content-length"] ?? 0) <= MaxBodyBytes,
      () => new PayloadTooLarge({ message: `body: larger than ${MaxBodyBytes} bytes` })
    ),
    Effect.zipRight(app),
    HttpIncomingMessage.withMaxBodySize(Option.some(MaxBodyBytes)),
    Effect.catchAllDefect((defect) =>
      isMalformedBody(defect)
        ? Effect.fail(
          new HttpApiError.HttpApiDecodeError({
            issues: [],
            message: `body: not valid JSON (${defect.cause instanceof Error ? defect.cause.message : "unreadable"})`
          })
        )
        : Effect.die(defect)
    ),
    Effect.mapError((error) =>
      error instanceof HttpApiError.HttpApiDecodeError && error.issues.length > 0
        ? new HttpApiError.HttpApiDecodeError({ issues: error.issues, message: describeIssues(error.issues) })
        : error
    ),
    // A path or method the API does not have gets a JSON 404 like every other error, not an empty one.
    Effect.catchIf(
      (error) => error instanceof HttpServerError.RouteNotFound,
      () =>
        HttpServerRequest.HttpServerRequest.pipe(
          Effect.flatMap((request) =>
            HttpServerResponse.json(
              { _tag: "RouteNotFound", message: `no route for ${request.method} ${request.url}` },
              { status: 404 }
            )
          ),
          Effect.orDie
        )
    )
  ))

export const ApiLive = HttpApiBuilder.api(OrdersApi).pipe(
  Layer.provide(OrdersHandlers),
  Layer.provide(BadRequests),
  // As the original: any origin may call the API from a browser.
  Layer.provide(HttpApiBuilder.middlewareCors())
)

const NodeServerLive = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* Config.port("PORT").pipe(Config.withDefault(8080))
  const host = yield* Config.option(Config.string("HOST"))
  return NodeHttpServer.layer(createServer, {
    port,
    ...Option.match(host, { onNone: () => ({}), onSome: (host) => ({ host }) })
  })
}))

const serve = Layer.unwrapEffect(
  Config.boolean("HTTP_ACCESS_LOG").pipe(
    Config.withDefault(true),
    Effect.map((accessLog) => HttpApiBuilder.serve(accessLog ? HttpMiddleware.logger : undefined))
  )
)

/** The HTTP server without its listener, for tests that bring their own (`NodeHttpServer.layerTest`). */
export const HttpAppLive = serve.pipe(
  Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
  Layer.provide(ApiLive),
  Layer.provide(CommandHandler.Default)
)

/** Listens on `HOST`:`PORT` (default: every interface, port 8080). */
export const HttpLive = HttpAppLive.pipe(HttpServer.withLogAddress, Layer.provide(NodeServerLive))
