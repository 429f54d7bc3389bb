import { HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { EventStore } from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { Workers } from "@orders/infra/Workers"
import { ConfigProvider, Effect, FastCheck as fc, Layer } from "effect"
import { EmbeddedWorkersLive, MemoryAdaptersLive } from "../src/Embedded.js"
import { HttpAppLive } from "../src/Http.js"
import { OrdersApi } from "../src/OrdersApi.js"

/** The embedded system on a real loopback HTTP server; processing never finishes, so "processing" stays observable. */
const TestSystem = Layer.mergeAll(HttpAppLive, EmbeddedWorkersLive).pipe(
  Layer.provideMerge(MemoryAdaptersLive),
  Layer.provide(Workers.Default),
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provide(Layer.setConfigProvider(
    ConfigProvider.fromMap(new Map([["PROCESSING_DELAY", "1 hour"], ["HTTP_ACCESS_LOG", "false"]]))
  ))
)

interface Answer {
  readonly status: number
  readonly body: unknown
}

const send = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) } satisfies Answer
  }).pipe(Effect.scoped)

const post = (path: string, body: string, contentType = "application/json") =>
  send(HttpClientRequest.post(path).pipe(HttpClientRequest.bodyText(body, contentType)))
const get = (path: string) => send(HttpClientRequest.get(path))
const create = (order: object) => post("/", JSON.stringify(order))

layer(TestSystem, { excludeTestServices: true })("Orders API", (it) => {
  describe("commands", () => {
    it.effect("creates an order: 201 with the order", () =>
      Effect.gen(function*() {
        expect(yield* create({ id: "c-1", name: "somename", status: "new" })).toEqual({
          status: 201,
          body: { id: "c-1", name: "somename", status: "new", version: 1 }
        })
        expect((yield* create({ id: "c-2", name: "no status" })).status).toBe(201)
      }))

    it.effect("requests processing: 202 with the order now processing", () =>
      Effect.gen(function*() {
        yield* create({ id: "p-1", name: "somename" })
        expect(yield* post("/p-1", "", "application/x-www-form-urlencoded")).toEqual({
          status: 202,
          body: { id: "p-1", name: "somename", status: "processing", version: 2 }
        })
      }))

    it.effect("refuses a duplicate id with 409 and keeps the first order", () =>
      Effect.gen(function*() {
        yield* create({ id: "d-1", name: "first" })
        const duplicate = yield* create({ id: "d-1", name: "second" })
        expect(duplicate).toEqual({
          status: 409,
          body: { _tag: "OrderAlreadyExists", orderId: "d-1", message: "order 'd-1' already exists" }
        })
      }))

    it.effect("refuses to process an order twice with 409", () =>
      Effect.gen(function*() {
        yield* create({ id: "t-1", name: "x" })
        yield* post("/t-1", "")
        expect(yield* post("/t-1", "")).toEqual({
          status: 409,
          body: {
            _tag: "InvalidOrderTransition",
            orderId: "t-1",
            status: "processing",
            command: "process",
            message: "cannot process order 't-1': it is processing"
          }
        })
      }))

    it.effect("lets exactly one of many concurrent writers through, and tells the others 409", () =>
      Effect.gen(function*() {
        yield* create({ id: "race-1", name: "x" })
        const answers = yield* Effect.all(Array.from({ length: 20 }, () => post("/race-1", "")), {
          concurrency: "unbounded"
        })
        expect(answers.filter((answer) => answer.status === 202)).toHaveLength(1)
        // The losers decided again on the fresh state: the order is already processing.
        expect(answers.filter((answer) => answer.status === 409).map((answer) => answer.body)).toEqual(
          Array.from({ length: 19 }, () => expect.objectContaining({ _tag: "InvalidOrderTransition" }))
        )
        const creates = yield* Effect.all(Array.from({ length: 20 }, () => create({ id: "race-2", name: "x" })), {
          concurrency: "unbounded"
        })
        expect(creates.filter((answer) => answer.status === 201)).toHaveLength(1)
        expect(creates.filter((answer) => answer.status === 409).map((answer) => answer.body)).toEqual(
          Array.from({ length: 19 }, () => expect.objectContaining({ _tag: "OrderAlreadyExists" }))
        )
      }))

    it.effect("refuses to process an unknown order with 404", () =>
      Effect.gen(function*() {
        expect(yield* post("/nobody", "")).toMatchObject({ status: 404, body: { _tag: "OrderNotFound" } })
      }))
  })

  describe("bad input: 400 with a message naming the field, and nothing changes", () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["not JSON", "{\"id\":", "body: not valid JSON"],
      ["an array", "[]", "body: Expected"],
      ["null", "null", "body: Expected"],
      ["missing fields", "{}", "id: is missing; name: is missing"],
      ["a numeric id", "{\"id\":1,\"name\":\"x\"}", "id: Expected string, actual 1"],
      ["an id with a space", "{\"id\":\"a b\",\"name\":\"x\"}", "id: must contain only letters, digits and . _ ~ -"],
      ["an id too long", JSON.stringify({ id: "x".repeat(129), name: "x" }), "id: must be at most 128 characters"],
      ["a blank name", "{\"id\":\"ok\",\"name\":\"   \"}", "name: must not be empty"],
      ["a name with a NUL", "{\"id\":\"ok\",\"name\":\"a\\u0000b\"}", "name: must not contain control characters"],
      ["a name with a lone surrogate", "{\"id\":\"ok\",\"name\":\"a\\ud800\"}", "name: must not contain control"],
      ["a status other than new", "{\"id\":\"ok\",\"name\":\"x\",\"status\":\"processed\"}", "status: Expected \"new\""]
    ]
    for (const [what, body, message] of cases) {
      it.effect(`rejects ${what}`, () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const answer = yield* post("/", body)
          expect(answer.status).toBe(400)
          expect(answer.body).toMatchObject({ _tag: "HttpApiDecodeError" })
          expect((answer.body as { message: string }).message).toContain(message)
          // Checked in the event store, the source of truth: the read model could lag behind an append.
          expect(yield* store.read(OrderId.make("ok"))).toEqual([])
        }))
    }

    it.effect("rejects an invalid id in the path", () =>
      Effect.gen(function*() {
        expect(yield* get("/a%20b")).toMatchObject({ status: 400, body: { message: expect.stringContaining("id:") } })
        expect(yield* post("/a%20b", "")).toMatchObject({ status: 400 })
      }))

    it.effect("refuses a body over 64 KiB with 413, before reading it", () =>
      Effect.gen(function*() {
        const answer = yield* create({ id: "huge", name: "x".repeat(70_000) })
        expect(answer).toEqual({
          status: 413,
          body: { _tag: "PayloadTooLarge", message: "body: larger than 65536 bytes" }
        })
        expect((yield* get("/huge")).status).toBe(404)
      }))

    it.effect("rejects a bad page size or cursor", () =>
      Effect.gen(function*() {
        expect(yield* get("/?limit=0")).toMatchObject({
          status: 400,
          body: { message: expect.stringContaining("limit") }
        })
        expect(yield* get("/?limit=abc")).toMatchObject({ status: 400 })
        expect(yield* get("/?after=%00")).toMatchObject({
          status: 400,
          body: { message: expect.stringContaining("after") }
        })
      }))

    it.effect.prop("never answers 5xx, whatever the body", [
      fc.oneof(
        fc.json(),
        fc.string(),
        fc.record({ id: fc.string(), name: fc.string(), status: fc.string() }, { requiredKeys: [] }).map((order) =>
          JSON.stringify(order)
        )
      )
    ], ([body]) =>
      Effect.gen(function*() {
        const answer = yield* post("/", body)
        expect([201, 400, 409]).toContain(answer.status)
      }), { fastCheck: { numRuns: 150 } })

    it.effect.prop("never answers 5xx, whatever the path", [
      fc.string({ minLength: 1, maxLength: 300 }).filter((id) => !["docs", "openapi.json"].includes(id))
    ], ([id]) =>
      Effect.gen(function*() {
        const path = `/${encodeURIComponent(id)}`
        expect([200, 400, 404]).toContain((yield* get(path)).status)
        expect([202, 400, 404, 409]).toContain((yield* post(path, "")).status)
      }), { fastCheck: { numRuns: 100 } })
  })

  describe("queries", () => {
    it.effect("gets an order, 404 when unknown", () =>
      Effect.gen(function*() {
        yield* create({ id: "q-1", name: "somename" })
        expect(yield* get("/q-1")).toEqual({
          status: 200,
          body: { id: "q-1", name: "somename", status: "new", version: 1 }
        })
        expect(yield* get("/q-unknown")).toEqual({
          status: 404,
          body: { _tag: "OrderNotFound", orderId: "q-unknown", message: "order 'q-unknown' does not exist" }
        })
      }))

    it.effect("lists orders sorted by id, a page at a time", () =>
      Effect.gen(function*() {
        for (const id of ["l-3", "l-1", "l-2"]) yield* create({ id, name: id })
        const page = (yield* get("/?after=l-&limit=2")).body as ReadonlyArray<{ id: string }>
        expect(page.map((order) => order.id)).toEqual(["l-1", "l-2"])
        const next = (yield* get("/?after=l-2&limit=1")).body as ReadonlyArray<{ id: string }>
        expect(next.map((order) => order.id)).toEqual(["l-3"])
      }))
  })

  describe("contract", () => {
    it.effect("answers an unknown route with a JSON 404", () =>
      Effect.gen(function*() {
        expect(yield* send(HttpClientRequest.del("/x"))).toEqual({
          status: 404,
          body: { _tag: "RouteNotFound", message: "no route for DELETE /x" }
        })
        expect((yield* get("/a/b")).body).toMatchObject({ _tag: "RouteNotFound" })
      }))

    it.effect("lets browsers of any origin call it, as the original did", () =>
      Effect.gen(function*() {
        const client = yield* HttpClient.HttpClient
        const response = yield* client.execute(
          HttpClientRequest.get("/").pipe(HttpClientRequest.setHeader("origin", "http://elsewhere.example"))
        )
        expect(response.headers["access-control-allow-origin"]).toBe("*")
      }).pipe(Effect.scoped))

    it.effect("serves its OpenAPI document and Swagger UI", () =>
      Effect.gen(function*() {
        const spec = (yield* get("/openapi.json")).body as { paths: Record<string, unknown> }
        expect(Object.keys(spec.paths).sort()).toEqual(["/", "/{id}"])
        const client = yield* HttpClient.HttpClient
        const docs = yield* client.get("/docs").pipe(Effect.flatMap((response) => response.text), Effect.scoped)
        expect(docs).toContain("swagger-ui")
      }))

    it.effect("can be called through a client derived from the contract", () =>
      Effect.gen(function*() {
        const client = yield* HttpApiClient.make(OrdersApi)
        const created = yield* client.orders.create({ payload: { id: OrderId.make("typed-1"), name: "typed" } })
        expect(created.status).toBe("new")
        const missing = yield* Effect.flip(client.orders.get({ path: { id: OrderId.make("typed-unknown") } }))
        expect(missing._tag).toBe("OrderNotFound")
      }))
  })
})
