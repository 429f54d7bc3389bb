/**
 * Who may call the API: with `API_TOKENS` set (comma-separated), commands need
 * `Authorization: Bearer <one of them>`, and queries too when
 * `API_TOKENS_FOR_QUERIES=true`; unset, the API is open, as the original was.
 * The documents stay open. The served OpenAPI document declares the bearer
 * scheme, and the 401 answers, only where they apply.
 */
import { HttpServerRequest } from "@effect/platform"
import { Config, Effect, Option, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import type { Document } from "./OrdersApi.js"
import { Unauthorized } from "./ProblemDetails.js"
import { isOperation } from "./Routes.js"

const digest = (token: string) => createHash("sha256").update(token).digest()

export const BearerScheme = "bearer"

export class ApiAccess extends Effect.Service<ApiAccess>()("orders/ApiAccess", {
  effect: Effect.gen(function*() {
    const configured = yield* Config.option(Config.redacted("API_TOKENS"))
    const forQueries = yield* Config.boolean("API_TOKENS_FOR_QUERIES").pipe(Config.withDefault(false))
    const digests = Option.match(configured, {
      onNone: () => [],
      onSome: (tokens) =>
        Redacted.value(tokens).split(",").map((token) => token.trim()).filter((token) => token !== "").map(digest)
    })
    const enabled = digests.length > 0

    /** Whether a request to `METHOD path` needs a token: commands do, queries when configured so. */
    const guards = (method: string, pathname: string) =>
      enabled && (method === "POST" || (forQueries && method === "GET")) && isOperation(method, pathname)

    /**
     * Compares digests, of equal length whatever the token, in constant time,
     * and against every configured token: neither the length nor the position
     * of a match shows in the time taken.
     */
    const accepts = (token: string) => {
      const presented = digest(token)
      let found = false
      for (const expected of digests) found = timingSafeEqual(presented, expected) || found
      return found
    }

    /** Fails with a 401 unless the request needs no token or carries a good one. */
    const check = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (!guards(request.method, request.url.split("?")[0] ?? "/")) return
      const token = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? "")?.[1]
      if (token === undefined) {
        return yield* new Unauthorized({
          reason: "missing_token",
          message: "send a bearer token: Authorization: Bearer <token>"
        })
      }
      if (!accepts(token)) {
        return yield* new Unauthorized({ reason: "invalid_token", message: "the bearer token is not valid" })
      }
    })

    /** The served document: the bearer scheme and the 401s where a token is needed, neither where it is not. */
    const document = (spec: Record<string, unknown>): Record<string, unknown> => {
      const { components, paths } = spec as unknown as Document
      if (enabled) {
        components.securitySchemes[BearerScheme] = {
          type: "http",
          scheme: "bearer",
          description: "One of the server's API_TOKENS"
        }
      }
      for (const [path, methods] of Object.entries(paths)) {
        for (const [method, operation] of Object.entries(methods)) {
          if (guards(method.toUpperCase(), path.replace(/\{(\w+)\}/g, ":$1"))) {
            operation.security = [{ [BearerScheme]: [] }]
          } else {
            delete operation.responses["401"]
          }
        }
      }
      return spec
    }

    return { enabled, check, document } as const
  })
}) {}

/** How a 401 tells the client what to send (RFC 6750). */
export const wwwAuthenticate = (error: Unauthorized) =>
  error.reason === "invalid_token" ? "Bearer realm=\"orders\", error=\"invalid_token\"" : "Bearer realm=\"orders\""
