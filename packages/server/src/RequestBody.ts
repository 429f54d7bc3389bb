/**
 * Request bodies, read and judged in bounded time and memory: only
 * `application/json` is read (415 otherwise, before a byte is read), at most
 * 64 KiB (413, also for chunked bodies), within `HTTP_BODY_TIMEOUT` (10 seconds: 408), and an
 * invalid one is described field by field without echoing more than a short
 * preview of what was sent (a 5,000-level array or a 60 KB string cost the
 * same few bytes).
 */
import { HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import type { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import type { ParseResult } from "effect"
import { Config, Duration, Effect, Either, Option, Schema, SchemaAST } from "effect"
import { JsonContentType, MaxBodyBytes } from "./OrdersApi.js"
import { BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from "./ProblemDetails.js"

/** A body that has not arrived by then is not coming: the connection is not held for it. */
export const BodyTimeout = Config.duration("HTTP_BODY_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10)))

/** At most this many issues are reported; the rest are counted. */
const maxIssues = 10
/** Characters of a value or key shown in a message. */
const maxPreview = 40

const truncate = (text: string, length: number) => {
  const characters = [...text]
  return characters.length > length ? `${characters.slice(0, length).join("")}…` : text
}

export const payloadTooLarge = () =>
  new PayloadTooLarge({ limit: MaxBodyBytes, message: `body: larger than ${MaxBodyBytes} bytes` })

const mediaType = (contentType: string | undefined) => contentType?.split(";")[0]?.trim().toLowerCase() ?? ""

/** Declares a body: a length above 0, or a chunked one (whose length is unknown until read). */
export const declaresBody = (headers: Readonly<Record<string, string | undefined>>) =>
  Number(headers["content-length"] ?? 0) > 0 || headers["transfer-encoding"] !== undefined

/**
 * Reads the raw body up to the limit. Past it, the rest is left to Node, which
 * discards it: the client is still sending, and a connection dropped under it
 * would lose the 413 (what `withMaxBodySize` does).
 */
const readBytes = (request: HttpServerRequest.HttpServerRequest, timeout: Duration.Duration) =>
  Effect.async<Uint8Array, PayloadTooLarge | RequestTimeout>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    // A timer of its own: Effect.timeoutFail forks a fiber for every body (about 30 µs each, measured).
    const timer = setTimeout(() => {
      stop()
      resume(Effect.fail(new RequestTimeout({ message: `body: not received within ${Duration.format(timeout)}` })))
    }, Duration.toMillis(timeout))
    const stop = () => {
      clearTimeout(timer)
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.resume()
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > MaxBodyBytes) {
        stop()
        resume(Effect.fail(payloadTooLarge()))
      } else {
        chunks.push(chunk)
      }
    }
    const onEnd = () => {
      stop()
      resume(Effect.succeed(Buffer.concat(chunks)))
    }
    // The client went away: there is no one to answer.
    const onError = () => {
      stop()
      resume(Effect.interrupt)
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    return Effect.sync(stop)
  })

const utf8 = new TextDecoder("utf-8", { fatal: true })

const invalidBody = (message: string) =>
  new BadRequest({ issues: [{ path: [], message }], message: `body: ${message}` })

/** How a value sent is shown in a message: its kind, or a short preview. */
const preview = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  switch (typeof value) {
    case "object":
      return "an object"
    case "string":
      return JSON.stringify(truncate(value, maxPreview))
    case "undefined":
      return "nothing"
    default:
      return truncate(String(value), maxPreview)
  }
}

const expected = (ast: SchemaAST.AST): string => {
  switch (ast._tag) {
    case "TypeLiteral":
      return "a JSON object"
    case "TupleType":
      return "a JSON array"
    case "StringKeyword":
    case "TemplateLiteral":
      return "a string"
    case "NumberKeyword":
      return "a number"
    case "BooleanKeyword":
      return "a boolean"
    case "Literal":
      return JSON.stringify(ast.literal)
    case "Union":
      return ast.types.map(expected).join(" or ")
    case "Refinement":
    case "Transformation":
      return expected(ast.from)
    default:
      return Option.getOrElse(SchemaAST.getIdentifierAnnotation(ast), () => "something else")
  }
}

/** The message a schema gives for its own failure, when it gives one as plain text. */
const annotatedMessage = (issue: ParseResult.ParseIssue): string | undefined => {
  if (!("ast" in issue)) return undefined
  const annotation = SchemaAST.getMessageAnnotation(issue.ast)
  if (Option.isNone(annotation)) return undefined
  const message = annotation.value(issue)
  if (typeof message === "string") return message
  return typeof message === "object" && "message" in message && typeof message.message === "string"
    ? message.message
    : undefined
}

type Path = ReadonlyArray<string | number>

/** Every invalid field once, with what is wrong: a walk of the parse issues that never formats a whole value. */
const collectIssues = (
  issue: ParseResult.ParseIssue,
  path: Path,
  out: Array<{ path: Path; message: string }>
): void => {
  switch (issue._tag) {
    case "Pointer": {
      const keys = Array.isArray(issue.path) ? issue.path : [issue.path]
      const shown = keys.map((key) => typeof key === "number" ? key : truncate(String(key), maxPreview))
      return collectIssues(issue.issue, [...path, ...shown], out)
    }
    case "Composite": {
      if (SchemaAST.isUnion(issue.ast)) {
        out.push({ path, message: `must be ${expected(issue.ast)}, not ${preview(issue.actual)}` })
        return
      }
      const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues]
      for (const inner of issues) collectIssues(inner, path, out)
      return
    }
    case "Refinement":
      return issue.kind === "From"
        ? collectIssues(issue.issue, path, out)
        : void out.push({ path, message: annotatedMessage(issue) ?? "is invalid" })
    case "Transformation":
      return collectIssues(issue.issue, path, out)
    case "Type":
      out.push({
        path,
        message: annotatedMessage(issue) ?? `must be ${expected(issue.ast)}, not ${preview(issue.actual)}`
      })
      return
    case "Missing":
      out.push({ path, message: "is missing" })
      return
    case "Unexpected":
      out.push({ path, message: "is not allowed" })
      return
    case "Forbidden":
      out.push({ path, message: "cannot be checked" })
      return
  }
}

/** A 400 naming each invalid field (the first few), in one line and as structured issues. */
export const badRequest = (issues: ReadonlyArray<{ readonly path: Path; readonly message: string }>) => {
  const shown = issues.slice(0, maxIssues)
  const line = shown.map(({ message, path }) => `${path.length === 0 ? "body" : path.join(".")}: ${message}`)
  if (issues.length > shown.length) line.push(`and ${issues.length - shown.length} more`)
  return new BadRequest({ issues: shown, message: line.join("; ") })
}

/** The library's decode errors (path, query, headers) in the same form, each message cut short. */
export const fromDecodeError = (error: HttpApiDecodeError) =>
  badRequest(error.issues.map(({ message, path }) => ({
    path: path.map((key) => typeof key === "number" ? key : truncate(String(key), maxPreview)),
    message: truncate(message, 4 * maxPreview)
  })))

/**
 * The body of a command that takes JSON, decoded: 415 unless declared
 * `application/json`, 413 past 64 KiB, 408 when it does not arrive, 400 when
 * it is not UTF-8, not JSON, or not what the schema says (no extra members).
 */
export const readJson = <A, I>(schema: Schema.Schema<A, I>, timeout: Duration.Duration) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (mediaType(request.headers["content-type"]) !== JsonContentType) {
      return yield* new UnsupportedMediaType({
        accept: [JsonContentType],
        message: `body: send it as ${JsonContentType}, not ${
          truncate(request.headers["content-type"] ?? "untyped", maxPreview)
        }`
      })
    }
    const bytes = yield* readBytes(request, timeout)
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      return yield* invalidBody("not valid UTF-8")
    }
    if (text.trim() === "") return yield* invalidBody("is empty")
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      return yield* invalidBody(`not valid JSON (${truncate(String((error as Error).message), 2 * maxPreview)})`)
    }
    return yield* Either.match(decode(json), {
      onRight: Effect.succeed,
      onLeft: (error) => {
        const issues: Array<{ path: Path; message: string }> = []
        collectIssues(error.issue, [], issues)
        return Effect.fail(badRequest(issues))
      }
    })
  })
}

/** A command that takes no body: an empty one is fine whatever its declared type (curl's `--data-raw ''`). */
export const requireNoBody = Effect.flatMap(
  HttpServerRequest.HttpServerRequest,
  (request) =>
    declaresBody(request.headers)
      ? Effect.fail(
        new UnsupportedMediaType({ accept: [], message: "body: this command takes none; send an empty body" })
      )
      : Effect.void
)
