import { HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import { EventStore } from "@orders/domain/EventStore"
import { Order, OrderId } from "@orders/domain/Order"
import { waitFor } from "@orders/domain/testing/fixtures"
import { Arbitrary, Chunk, Effect, FastCheck as fc, Schema, Stream } from "effect"
import type { Document } from "../src/OrdersApi.js"
import { OrderResponse, orderResponseJson, OrdersApi } from "../src/OrdersApi.js"
import { apiSystem, create, get, post, raw, send, statusOf } from "./support/apiSystem.js"

const problemJson = "application/problem+json"

/** A problem document of the given `_tag` and status, with its members. */
const problem = (status: number, _tag: string, members: object = {}) => ({
  status,
  headers: expect.objectContaining({ "content-type": problemJson }),
  body: expect.objectContaining({
    type: `urn:orders:problem:${_tag}`,
    title: expect.any(String),
    status,
    detail: expect.any(String),
    _tag,
    ...members
  })
})

/** Nothing was appended to the order: checked in the event store, which the read model lags. */
const nothingStored = (id: string) =>
  Effect.flatMap(EventStore, (store) => store.read(OrderId.make(id))).pipe(Effect.map((events) => events.length === 0))

layer(apiSystem(), { excludeTestServices: true })("Orders API", (it) => {
  describe("commands", () => {
    it.effect("creates an order: 201 with the order, its Location and its version as ETag", () =>
      Effect.gen(function*() {
        const created = yield* create({ id: "c-1", name: "somename", status: "new" })
        expect(created).toMatchObject({
          status: 201,
          headers: { location: "/c-1", etag: "\"1\"", "content-type": "application/json" },
          body: { id: "c-1", name: "somename", status: "new", version: 1 }
        })
        expect((yield* create({ id: "c-2", name: "no status" })).status).toBe(201)
      }))

    it.effect("requests processing: 202 with the order now processing, even with the original's curl headers", () =>
      Effect.gen(function*() {
        yield* create({ id: "p-1", name: "somename" })
        expect(yield* post("/p-1", "", "application/x-www-form-urlencoded")).toMatchObject({
          status: 202,
          headers: { etag: "\"2\"" },
          body: { id: "p-1", name: "somename", status: "processing", version: 2 }
        })
      }))

    it.effect("refuses a duplicate id with 409 and keeps the first order", () =>
      Effect.gen(function*() {
        yield* create({ id: "d-1", name: "first" })
        expect(yield* create({ id: "d-1", name: "second" })).toMatchObject(
          problem(409, "OrderAlreadyExists", { orderId: "d-1", detail: "order 'd-1' already exists" })
        )
        expect((yield* get("/d-1?at=1")).body.name).toBe("first")
      }))

    it.effect("refuses to process an order twice with 409", () =>
      Effect.gen(function*() {
        yield* create({ id: "t-1", name: "x" })
        yield* post("/t-1", "")
        expect(yield* post("/t-1", "")).toMatchObject(problem(409, "InvalidOrderTransition", {
          orderId: "t-1",
          // `status` is the problem's HTTP status: the order's own is `orderStatus`.
          orderStatus: "processing",
          command: "process",
          detail: "cannot process order 't-1': it is processing"
        }))
      }))

    it.effect("lets exactly one of many concurrent writers through, and tells the others 409", () =>
      Effect.gen(function*() {
        yield* create({ id: "race-1", name: "x" })
        const answers = yield* Effect.all(Array.from({ length: 20 }, () => post("/race-1", "")), {
          concurrency: "unbounded"
        })
        expect(answers.filter((answer) => answer.status === 202)).toHaveLength(1)
        // The losers decided again on the fresh state: the order is already processing.
        expect(answers.filter((answer) => answer.status === 409).map((answer) => answer.body._tag)).toEqual(
          Array.from({ length: 19 }, () => "InvalidOrderTransition")
        )
        const creates = yield* Effect.all(Array.from({ length: 20 }, () => create({ id: "race-2", name: "x" })), {
          concurrency: "unbounded"
        })
        expect(creates.filter((answer) => answer.status === 201)).toHaveLength(1)
        expect(creates.filter((answer) => answer.status === 409).map((answer) => answer.body._tag)).toEqual(
          Array.from({ length: 19 }, () => "OrderAlreadyExists")
        )
      }))

    it.effect("refuses to process an unknown order with 404", () =>
      Effect.gen(function*() {
        expect(yield* post("/nobody", "")).toMatchObject(problem(404, "OrderNotFound", { orderId: "nobody" }))
      }))
  })

  describe("bad input: 400 with a message naming each field, and nothing changes", () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["not JSON", "{\"id\":", "body: not valid JSON"],
      ["an empty body", "", "body: is empty"],
      ["an array", "[]", "body: must be a JSON object, not an array"],
      ["null", "null", "body: must be a JSON object, not null"],
      ["missing fields", "{}", "id: is missing; name: is missing"],
      ["a numeric id", "{\"id\":1,\"name\":\"x\"}", "id: must be a string, not 1"],
      ["an id with a space", "{\"id\":\"a b\",\"name\":\"x\"}", "id: must contain only letters, digits and . _ ~ -"],
      ["an id too long", JSON.stringify({ id: "x".repeat(129), name: "x" }), "id: must be at most 128 characters"],
      ["the id .", "{\"id\":\".\",\"name\":\"x\"}", "id: must not be . or .."],
      ["the id ..", "{\"id\":\"..\",\"name\":\"x\"}", "id: must not be . or .."],
      ["a blank name", "{\"id\":\"ok\",\"name\":\"   \"}", "name: must not be empty"],
      ["a name with a NUL", "{\"id\":\"ok\",\"name\":\"a\\u0000b\"}", "name: must not contain control characters"],
      ["a name with a lone surrogate", "{\"id\":\"ok\",\"name\":\"a\\ud800\"}", "name: must not contain control"],
      ["a status other than new", "{\"id\":\"ok\",\"name\":\"x\",\"status\":\"processed\"}", "status: must be \"new\""],
      ["a member the document does not allow", "{\"id\":\"ok\",\"name\":\"x\",\"colour\":1}", "colour: is not allowed"]
    ]
    for (const [what, body, message] of cases) {
      it.effect(`rejects ${what}`, () =>
        Effect.gen(function*() {
          const answer = yield* post("/", body)
          expect(answer).toMatchObject(problem(400, "BadRequest"))
          expect(answer.body.detail).toContain(message)
          expect(answer.body.issues).not.toEqual([])
          expect(yield* nothingStored("ok")).toBe(true)
        }))
    }

    it.effect("reports a wrong status once, without a stray \"Expected undefined\"", () =>
      Effect.gen(function*() {
        const answer = yield* post("/", "{\"id\":\"ok\",\"name\":\"x\",\"status\":1}")
        expect(answer.body.issues).toEqual([{ path: ["status"], message: "must be \"new\", not 1" }])
      }))

    it.effect("echoes at most a short preview of what was sent, however large", () =>
      Effect.gen(function*() {
        const huge = "x".repeat(30_000)
        for (const body of [{ id: huge, name: "x" }, { id: "ok", name: [huge] }, { id: "ok", name: "x", [huge]: 1 }]) {
          const answer = yield* create(body)
          expect(answer.status).toBe(400)
          expect(JSON.stringify(answer.body).length).toBeLessThan(1000)
        }
        const many = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`extra${i}`, i]))
        const answer = yield* create({ id: "ok", name: "x", ...many })
        expect(answer.body.issues).toHaveLength(10)
        expect(answer.body.detail).toContain("and 1990 more")
      }))

    it.effect("rejects an invalid id in the path, also past the router's default limit of 100", () =>
      Effect.gen(function*() {
        expect(yield* get("/a%20b")).toMatchObject(problem(400, "BadRequest", { issues: [expect.anything()] }))
        expect(yield* post("/a%20b", "")).toMatchObject({ status: 400 })
        expect(yield* get(`/${"x".repeat(129)}`)).toMatchObject(problem(400, "BadRequest"))
        expect(yield* post(`/${"x".repeat(300)}`, "")).toMatchObject(problem(400, "BadRequest"))
        // Sent as they are: a URL-normalising client would send "/" instead.
        for (const id of ["..", "%2E%2E", "."]) expect(statusOf(yield* raw(`GET /${id} HTTP/1.1\nHost: x\n`))).toBe(400)
      }))

    it.effect("rejects a bad page size or cursor", () =>
      Effect.gen(function*() {
        expect(yield* get("/?limit=0")).toMatchObject(problem(400, "BadRequest", {
          detail: "limit: must be an integer from 1 to 1000"
        }))
        expect(yield* get("/?limit=abc")).toMatchObject({ status: 400 })
        expect(yield* get("/?limit=1&limit=2")).toMatchObject({ status: 400 })
        expect((yield* get("/?after=%00")).body.detail).toContain("after")
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

  describe("hostile input: a 4xx problem document in bounded time, and nothing created", () => {
    const multipart = "multipart/form-data; boundary=zz"
    it.effect("refuses multipart bodies with 415 without reading them: no boundary, garbage, empty, truncated", () =>
      Effect.gen(function*() {
        expect(yield* post("/", "x", "multipart/form-data")).toMatchObject(problem(415, "UnsupportedMediaType"))
        expect(yield* post("/", "garbage", multipart)).toMatchObject(problem(415, "UnsupportedMediaType"))
        expect(yield* post("/", "", multipart)).toMatchObject(problem(415, "UnsupportedMediaType"))
        const form = "--zz\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nform-1\r\n--zz\r\n"
        expect(yield* post("/", form, multipart)).toMatchObject(problem(415, "UnsupportedMediaType"))
        // Declares 1,000 bytes and sends 20: refused on its headers, not waited for.
        const truncated = yield* raw(
          `POST / HTTP/1.1\nHost: x\nContent-Type: ${multipart}\nContent-Length: 1000\n`,
          "--zz\r\nContent-Dispo"
        )
        expect(statusOf(truncated)).toBe(415)
        expect(yield* nothingStored("form-1")).toBe(true)
      }))

    it.effect("creates nothing from a form: commands take JSON only", () =>
      Effect.gen(function*() {
        expect(yield* post("/", "id=form-2&name=x", "application/x-www-form-urlencoded")).toMatchObject(
          problem(415, "UnsupportedMediaType", { accept: ["application/json"] })
        )
        expect(yield* post("/", JSON.stringify({ id: "form-2", name: "x" }), "text/plain")).toMatchObject({
          status: 415
        })
        expect(yield* nothingStored("form-2")).toBe(true)
        expect(
          (yield* post("/", JSON.stringify({ id: "form-2", name: "x" }), "Application/JSON; charset=utf-8")).status
        )
          .toBe(201)
      }))

    it.effect("refuses a body on POST /:id with 415: it takes none", () =>
      Effect.gen(function*() {
        yield* create({ id: "nobody-body", name: "x" })
        expect(yield* post("/nobody-body", "{}")).toMatchObject(problem(415, "UnsupportedMediaType"))
        expect((yield* get("/nobody-body?at=1")).body.status).toBe("new")
      }))

    it.effect("answers JSON nested 5,000 levels deep with a 400, not a stack overflow", () =>
      Effect.gen(function*() {
        const deep = "[".repeat(5000) + "]".repeat(5000)
        expect(yield* post("/", deep)).toMatchObject(problem(400, "BadRequest"))
        expect(yield* post("/", `{"id":"deep","name":${deep}}`)).toMatchObject(problem(400, "BadRequest", {
          detail: "name: must be a string, not an array"
        }))
        expect(yield* post("/", `{"id":"deep","name":"x","more":${deep}}`)).toMatchObject({ status: 400 })
      }))

    it.effect("refuses a body over 64 KiB with 413 and the CORS header, declared or chunked", () =>
      Effect.gen(function*() {
        const origin = { origin: "http://elsewhere.example" }
        const declared = yield* post("/", JSON.stringify({ id: "huge", name: "x".repeat(70_000) }), undefined, origin)
        expect(declared).toMatchObject(problem(413, "PayloadTooLarge", { limit: 65536 }))
        expect(declared.headers["access-control-allow-origin"]).toBe("*")
        const chunks = Stream.fromChunk(Chunk.make("{\"id\":\"huge\",\"name\":\"", "x".repeat(70_000), "\"}")).pipe(
          Stream.encodeText
        )
        const chunked = yield* send(
          HttpClientRequest.post("/").pipe(
            HttpClientRequest.bodyStream(chunks, { contentType: "application/json" }),
            HttpClientRequest.setHeaders(origin)
          )
        )
        expect(chunked).toMatchObject(problem(413, "PayloadTooLarge"))
        expect(chunked.headers["access-control-allow-origin"]).toBe("*")
        expect(yield* nothingStored("huge")).toBe(true)
      }))

    it.effect("refuses a body that is not UTF-8", () =>
      Effect.gen(function*() {
        const answer = yield* raw(
          "POST / HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 25\n",
          Buffer.concat([Buffer.from("{\"id\":\"bin\",\"name\":\""), Buffer.from([0xff, 0xfe]), Buffer.from("\"}\n")])
        )
        expect(statusOf(answer)).toBe(400)
      }))
  })

  describe("routes", () => {
    it.effect("answers an unknown path with a 404 problem", () =>
      Effect.gen(function*() {
        expect(yield* get("/a/b/c")).toMatchObject(problem(404, "RouteNotFound", { method: "GET", path: "/a/b/c" }))
      }))

    it.effect("answers a known path with a wrong method with 405 and Allow", () =>
      Effect.gen(function*() {
        const answer = yield* send(HttpClientRequest.del("/x"))
        expect(answer).toMatchObject(
          problem(405, "MethodNotAllowed", { method: "DELETE", allow: ["POST", "GET", "HEAD"] })
        )
        expect(answer.headers.allow).toBe("POST, GET, HEAD")
        expect((yield* send(HttpClientRequest.put("/"))).headers.allow).toBe("POST, GET, HEAD")
        expect((yield* send(HttpClientRequest.post("/x/events"))).headers.allow).toBe("GET, HEAD")
      }))

    it.effect("serves ids of 101 to 128 characters, past the router's default limit", () =>
      Effect.gen(function*() {
        const id = "l".repeat(128)
        expect((yield* create({ id, name: "long" })).status).toBe(201)
        expect((yield* get(`/${id}?at=1`)).status).toBe(200)
        expect((yield* post(`/${id}`, "")).status).toBe(202)
      }))
  })

  describe("optimistic concurrency", () => {
    it.effect("ETag on GET /:id is the order's version", () =>
      Effect.gen(function*() {
        yield* create({ id: "e-1", name: "x" })
        expect((yield* get("/e-1?at=1")).headers.etag).toBe("\"1\"")
      }))

    it.effect("If-Match with the current version processes; a stale one is 412 and appends nothing", () =>
      Effect.gen(function*() {
        yield* create({ id: "m-1", name: "x" })
        const stale = yield* post("/m-1", "", undefined, { "if-match": "\"2\"" })
        expect(stale).toMatchObject(problem(412, "VersionMismatch", { expectedVersion: 2, actualVersion: 1 }))
        expect((yield* get("/m-1/events")).body).toHaveLength(1)
        expect(yield* post("/m-1", "", undefined, { "if-match": "\"1\"" })).toMatchObject({
          status: 202,
          headers: { etag: "\"2\"" }
        })
        expect((yield* post("/m-1", "", undefined, { "if-match": "W/\"2\"" })).status).toBe(400)
      }))
  })

  describe("history", () => {
    it.effect("lists an order's events in version order, a page at a time", () =>
      Effect.gen(function*() {
        yield* create({ id: "h-1", name: "x" }, { "x-correlation-id": "corr-h-1" })
        yield* post("/h-1", "")
        const all = (yield* get("/h-1/events")).body
        expect(all.map((event) => [event.version, event.type])).toEqual([
          [1, "OrderCreated"],
          [2, "OrderProcessingRequested"]
        ])
        expect(all[0]).toMatchObject({ streamId: "h-1", metadata: { correlationId: "corr-h-1" } })
        expect((yield* get("/h-1/events?limit=1")).body.map((event) => event.version)).toEqual([1])
        expect((yield* get("/h-1/events?after=1&limit=1")).body.map((event) => event.version)).toEqual([2])
        expect(yield* get("/h-nobody/events")).toMatchObject(problem(404, "OrderNotFound"))
      }))

    it.effect("shows the order as it was after a version", () =>
      Effect.gen(function*() {
        yield* create({ id: "h-2", name: "x" })
        yield* post("/h-2", "")
        expect(yield* get("/h-2?at=1")).toMatchObject({ status: 200, body: { status: "new", version: 1 } })
        expect(yield* get("/h-2?at=2")).toMatchObject({ body: { status: "processing", version: 2 } })
        expect(yield* get("/h-2?at=3")).toMatchObject(problem(404, "OrderVersionNotFound", { version: 3 }))
        expect(yield* get("/h-2?at=0")).toMatchObject({ status: 400 })
      }))
  })

  describe("idempotency keys", () => {
    it.effect("a retry with the same key and body gets the first answer and appends nothing", () =>
      Effect.gen(function*() {
        const key = { "idempotency-key": "k-create-1" }
        const first = yield* create({ id: "i-1", name: "x" }, key)
        yield* post("/i-1", "")
        const retry = yield* create({ id: "i-1", name: "x", status: "new" }, key)
        expect(retry).toMatchObject({ status: 201, headers: { etag: "\"1\"", location: "/i-1" }, body: first.body })

        const processKey = { "idempotency-key": "k-process-1" }
        yield* create({ id: "i-2", name: "x" })
        const processed = yield* post("/i-2", "", undefined, processKey)
        // With the If-Match of the first attempt: the key is looked up before the version is checked.
        const again = yield* post("/i-2", "", undefined, { ...processKey, "if-match": "\"1\"" })
        expect(again).toMatchObject({ status: 202, body: processed.body })
        expect((yield* get("/i-2/events")).body).toHaveLength(2)
      }))

    it.effect("the same key with another body is 422", () =>
      Effect.gen(function*() {
        const key = { "idempotency-key": "k-create-2" }
        yield* create({ id: "i-3", name: "x" }, key)
        expect(yield* create({ id: "i-3", name: "y" }, key)).toMatchObject(
          problem(422, "IdempotencyKeyReused", { orderId: "i-3", idempotencyKey: "k-create-2" })
        )
        expect(yield* post("/i-3", "", undefined, key)).toMatchObject({ status: 422 })
        expect((yield* get("/i-3/events")).body).toHaveLength(1)
      }))

    it.effect("concurrent retries with one key append once and all get the same answer", () =>
      Effect.gen(function*() {
        const key = { "idempotency-key": "k-race" }
        const answers = yield* Effect.all(
          Array.from({ length: 10 }, () => create({ id: "i-race", name: "x" }, key)),
          { concurrency: "unbounded" }
        )
        expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 10 }, () => 201))
        expect((yield* get("/i-race/events")).body).toHaveLength(1)
      }))
  })

  describe("queries", () => {
    it.effect("gets an order, 404 when unknown", () =>
      Effect.gen(function*() {
        yield* create({ id: "q-1", name: "somename" })
        expect((yield* get("/q-1?at=1")).body).toEqual({ id: "q-1", name: "somename", status: "new", version: 1 })
        expect(yield* get("/q-unknown")).toMatchObject(problem(404, "OrderNotFound", {
          orderId: "q-unknown",
          detail: "order 'q-unknown' does not exist"
        }))
      }))

    it.effect("lists orders sorted by id, a page at a time", () =>
      Effect.gen(function*() {
        for (const id of ["l-3", "l-1", "l-2"]) yield* create({ id, name: id })
        const page = (yield* get("/?after=l-&limit=2")).body
        expect(page.map((order) => order.id)).toEqual(["l-1", "l-2"])
        const next = (yield* get("/?after=l-2&limit=1")).body
        expect(next.map((order) => order.id)).toEqual(["l-3"])
      }))
  })

  describe("contract", () => {
    it.effect("lets browsers of any origin call it, and read its headers", () =>
      Effect.gen(function*() {
        const answer = yield* get("/", { origin: "http://elsewhere.example" })
        expect(answer.headers["access-control-allow-origin"]).toBe("*")
        expect(answer.headers["access-control-expose-headers"]).toContain("ETag")
      }))

    it.effect("serves its OpenAPI document and Swagger UI, compressed when the client accepts it", () =>
      Effect.gen(function*() {
        const spec = (yield* get("/openapi.json")).body
        expect(Object.keys(spec.paths as object).sort()).toEqual(["/", "/{id}", "/{id}/events"])
        const client = yield* HttpClient.HttpClient
        const docs = yield* client.get("/docs").pipe(Effect.flatMap((response) => response.text), Effect.scoped)
        expect(docs).toContain("swagger-ui")
        const compressed = yield* client.get("/docs", { headers: { "accept-encoding": "gzip" } }).pipe(
          Effect.map((response) => response.headers["content-encoding"]),
          Effect.scoped
        )
        expect(compressed).toBe("gzip")
      }))

    it.effect("documents what the server checks, and every error it answers, with plain titles", () =>
      Effect.gen(function*() {
        const document = (yield* get("/openapi.json")).body as unknown as Document
        const { schemas } = document.components
        const list = document.paths["/"]!.get! as unknown as { parameters: ReadonlyArray<{ schema: unknown }> }
        expect(list.parameters[0]!.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 1000, default: 1000 })
        expect(schemas.OrderName).toMatchObject({ type: "string", minLength: 1, maxLength: 200 })
        expect(new RegExp(String(schemas.OrderName!.pattern), "u").test("a\u0000b")).toBe(false)
        expect(schemas.CreateOrderRequest).toMatchObject({ additionalProperties: false })
        expect(JSON.stringify(document)).not.toMatch(/"title":"\w+\(/)
        for (
          const [status, tag] of [["404", "RouteNotFound"], ["405", "MethodNotAllowed"], ["413", "PayloadTooLarge"], [
            "500",
            "InternalServerError"
          ], ["503", "ServiceUnavailable"]]
        ) {
          expect(JSON.stringify(document.paths["/{id}"]!.get!.responses[status!])).toContain(tag)
        }
        expect(Object.keys(document.paths["/"]!.post!.responses)).toEqual(expect.arrayContaining(["408", "415", "422"]))
        expect(document.paths["/{id}"]!.post!.responses["412"]!.content).toHaveProperty(["application/problem+json"])
      }))

    it.effect("can be called through a client derived from the contract, errors included", () =>
      Effect.gen(function*() {
        const client = yield* HttpApiClient.make(OrdersApi)
        const created = yield* client.orders.create({
          payload: { id: OrderId.make("typed-1"), name: "typed" },
          headers: {}
        })
        expect(created.status).toBe("new")
        const missing = yield* Effect.flip(
          client.orders.get({ path: { id: OrderId.make("typed-unknown") }, urlParams: {} })
        )
        expect(missing).toMatchObject({ _tag: "OrderNotFound", message: "order 'typed-unknown' does not exist" })
        const processed = yield* client.orders.process({ path: { id: OrderId.make("typed-1") }, headers: {} })
        expect(processed.version).toBe(2)
        const twice = yield* Effect.flip(client.orders.process({ path: { id: OrderId.make("typed-1") }, headers: {} }))
        expect(twice).toMatchObject({ _tag: "InvalidOrderTransition", status: "processing" })
      }))
  })
})

layer(apiSystem({ PROCESSING_DELAY: "0 millis", PROCESSING_FAILURE_RATE: "1" }), { excludeTestServices: true })(
  "Orders API, when processing fails",
  (it) => {
    it.effect("answers a failed order's failure, with its message as failureReason for earlier clients", () =>
      Effect.gen(function*() {
        yield* create({ id: "f-1", name: "doomed" })
        yield* post("/f-1", "")
        const failure = { code: "simulated_failure", message: "mock processing failed" }
        const failed = {
          id: "f-1",
          name: "doomed",
          status: "failed",
          version: 3,
          failure,
          failureReason: failure.message
        }
        expect((yield* waitFor(get("/f-1"), (answer) => answer.body.version === 3)).body).toEqual(failed)
        expect((yield* get("/f-1?at=3")).body).toEqual(failed)
        expect((yield* get("/f-1/events?after=2")).body).toMatchObject([{
          type: "OrderProcessingFailed",
          data: { reason: failure }
        }])
        const client = yield* HttpApiClient.make(OrdersApi)
        expect(yield* client.orders.get({ path: { id: OrderId.make("f-1") }, urlParams: {} })).toMatchObject({
          failure
        })
      }))
  }
)

describe("orderResponseJson", () => {
  it("encodes every order as the endpoint's schema does, key order included", () => {
    const encodeBySchema = Schema.encodeSync(OrderResponse)
    fc.assert(
      fc.property(Arbitrary.make(Order), (order) => {
        expect(JSON.stringify(orderResponseJson(order))).toBe(JSON.stringify(encodeBySchema(order)))
      }),
      // Enough for the failed orders, about a fifth of what the arbitrary makes.
      { numRuns: 500 }
    )
  })
})
