import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { Document } from "../src/OrdersApi.js"
import { apiSystem, create, get, post } from "./support/apiSystem.js"

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

const servedDocument = Effect.map(get("/openapi.json"), (answer) => answer.body as unknown as Document)

describe("bearer tokens", () => {
  layer(apiSystem({ API_TOKENS: "alpha, beta" }), { excludeTestServices: true })("for commands", (it) => {
    it.effect("refuses a command without a token with 401 and WWW-Authenticate, creating nothing", () =>
      Effect.gen(function*() {
        const missing = yield* create({ id: "a-1", name: "x" })
        expect(missing).toMatchObject({
          status: 401,
          headers: { "www-authenticate": "Bearer realm=\"orders\"", "content-type": "application/problem+json" },
          body: { _tag: "Unauthorized", reason: "missing_token", status: 401 }
        })
        const wrong = yield* create({ id: "a-1", name: "x" }, bearer("alph"))
        expect(wrong).toMatchObject({
          status: 401,
          headers: { "www-authenticate": "Bearer realm=\"orders\", error=\"invalid_token\"" },
          body: { reason: "invalid_token" }
        })
        expect((yield* post("/a-1", "", undefined, bearer("gamma"))).status).toBe(401)
        expect((yield* get("/a-1/events")).status).toBe(404)
      }))

    it.effect("accepts each configured token, and leaves queries and documents open", () =>
      Effect.gen(function*() {
        expect((yield* create({ id: "a-2", name: "x" }, bearer("beta"))).status).toBe(201)
        expect((yield* post("/a-2", "", undefined, bearer("alpha"))).status).toBe(202)
        expect((yield* get("/a-2/events")).status).toBe(200)
        expect((yield* get("/docs")).status).toBe(200)
      }))

    it.effect("declares the bearer scheme on commands only, with their 401", () =>
      Effect.gen(function*() {
        const document = yield* servedDocument
        expect(document.components.securitySchemes).toEqual({ bearer: expect.objectContaining({ scheme: "bearer" }) })
        expect(document.paths["/"]!.post!.security).toEqual([{ bearer: [] }])
        expect(document.paths["/"]!.post!.responses["401"]).toBeDefined()
        expect(document.paths["/"]!.get!.security).toEqual([])
        expect(document.paths["/"]!.get!.responses["401"]).toBeUndefined()
      }))
  })

  layer(apiSystem({ API_TOKENS: "alpha", API_TOKENS_FOR_QUERIES: "true" }), { excludeTestServices: true })(
    "for queries too",
    (it) => {
      it.effect("refuses a query without a token, accepts it with one", () =>
        Effect.gen(function*() {
          expect((yield* get("/")).status).toBe(401)
          expect((yield* get("/", bearer("alpha"))).status).toBe(200)
          expect((yield* get("/openapi.json")).status).toBe(200)
          expect((yield* servedDocument).paths["/{id}/events"]!.get!.security).toEqual([{ bearer: [] }])
        }))
    }
  )

  layer(apiSystem(), { excludeTestServices: true })("none configured", (it) => {
    it.effect("keeps every call open and declares no scheme and no 401: Swagger shows no Authorize button", () =>
      Effect.gen(function*() {
        expect((yield* create({ id: "open-1", name: "x" })).status).toBe(201)
        const document = yield* servedDocument
        expect(document.components.securitySchemes).toEqual({})
        for (const methods of Object.values(document.paths)) {
          for (const operation of Object.values(methods)) {
            expect(operation.security).toEqual([])
            expect(operation.responses["401"]).toBeUndefined()
          }
        }
      }))
  })
})
