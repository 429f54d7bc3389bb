/**
 * A tiny OTLP/HTTP trace receiver for tests: it accepts `POST /v1/traces`
 * with JSON bodies (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) and keeps every
 * span it was sent, with the service that sent it.
 */
import { Effect } from "effect"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"

export interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP's numbering: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly attributes: Readonly<Record<string, unknown>>
}

interface OtlpAttribute {
  readonly key: string
  readonly value: Readonly<Record<string, unknown>>
}

interface OtlpRequest {
  readonly resourceSpans?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: ReadonlyArray<OtlpAttribute> }
    readonly scopeSpans?: ReadonlyArray<{
      readonly spans?: ReadonlyArray<{
        readonly traceId: string
        readonly spanId: string
        readonly parentSpanId?: string
        readonly name: string
        readonly kind: number
        readonly attributes?: ReadonlyArray<OtlpAttribute>
      }>
    }>
  }>
}

/** An attribute's value, whatever its OTLP type (`stringValue`, `intValue`, ...). */
const attributesOf = (attributes: ReadonlyArray<OtlpAttribute> = []) =>
  Object.fromEntries(attributes.map(({ key, value }) => [key, Object.values(value)[0]]))

const spansOf = (request: OtlpRequest): ReadonlyArray<ReceivedSpan> =>
  (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const service = String(attributesOf(resourceSpans.resource?.attributes)["service.name"] ?? "")
    return (resourceSpans.scopeSpans ?? []).flatMap((scopeSpans) =>
      (scopeSpans.spans ?? []).map((span) => ({
        service,
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId === "" ? undefined : span.parentSpanId,
        name: span.name,
        kind: span.kind,
        attributes: attributesOf(span.attributes)
      }))
    )
  })

/** A receiver on a free loopback port for the Scope: its endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`) and what it got. */
export const otlpReceiver = Effect.gen(function*() {
  const received: Array<ReceivedSpan> = []
  const server = yield* Effect.acquireRelease(
    Effect.async<Server>((resume) => {
      const server = createServer((request, response) => {
        let body = ""
        request.setEncoding("utf8")
        request.on("data", (chunk: string) => (body += chunk))
        request.on("end", () => {
          if (request.method !== "POST" || request.url !== "/v1/traces") return response.writeHead(404).end()
          received.push(...spansOf(JSON.parse(body) as OtlpRequest))
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: (): ReadonlyArray<ReceivedSpan> => [...received]
  }
})
