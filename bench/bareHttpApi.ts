/**
 * The framework floor of `pnpm bench`: the same small JSON as the bare
 * server, answered through what the Orders API is built on: an `HttpApi`
 * endpoint (`GET /:id`, its path and response decoded and encoded by Schema)
 * served by `@effect/platform-node`, with none of the API's middleware,
 * stores or logs. What a read costs before this code does anything.
 * Listens on 127.0.0.1:$PORT until SIGTERM.
 */
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"

const Order = Schema.Struct({ id: Schema.String, name: Schema.String, status: Schema.String, version: Schema.Number })

const Api = HttpApi.make("floor").add(
  HttpApiGroup.make("orders").add(
    HttpApiEndpoint.get("get", "/:id").setPath(Schema.Struct({ id: Schema.String })).addSuccess(Order)
  )
)

const Handlers = HttpApiBuilder.group(
  Api,
  "orders",
  (handlers) =>
    handlers.handle(
      "get",
      ({ path }) => Effect.succeed({ id: path.id, name: "bench order", status: "new", version: 1 })
    )
)

HttpApiBuilder.serve().pipe(
  HttpServer.withLogAddress,
  Layer.provide(HttpApiBuilder.api(Api).pipe(Layer.provide(Handlers))),
  Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: Number(process.env.PORT) })),
  Layer.launch,
  NodeRuntime.runMain
)
