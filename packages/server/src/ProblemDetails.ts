/**
 * RFC 9457 problem details: every error the API answers is an
 * `application/problem+json` document with `type`, `title`, `status` and
 * `detail`, plus the error's `_tag` and its fields as extension members. The
 * error classes stay what they are (`Schema.TaggedError`s with a `message`);
 * only their encoded form is a problem document, so a client derived from the
 * contract decodes them back into the same classes. Imports nothing
 * server-only: it is part of the contract.
 */
import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"

export const ProblemContentType = "application/problem+json"

/** A problem type names the error: `urn:orders:problem:<_tag>`; it identifies, it is not a page to fetch. */
export const problemType = (tag: string) => `urn:orders:problem:${tag}`

/** The members every problem document has. */
export interface Problem {
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string
}

type TaggedErrorSchema = Schema.Schema.AnyNoContext & {
  readonly _tag: string
  readonly fields: Schema.Struct.Fields
}

/**
 * The error encoded as a problem document: `message` becomes `detail`, the
 * other fields stay beside `_tag` (under another name where `renamed` says so:
 * a field may not take a problem member's name, such as `status`). Annotated
 * with the HTTP status and the problem content type, so the server encodes it,
 * the client decodes it and the OpenAPI document describes it from this one
 * schema.
 */
export const asProblem = <S extends TaggedErrorSchema>(
  error: S,
  options: {
    readonly status: number
    readonly title: string
    readonly description?: string
    readonly renamed?: Readonly<Record<string, string>>
  }
): Schema.Schema<Schema.Schema.Type<S>, Problem & { readonly _tag: string }> => {
  const { message: _message, ...fields } = error.fields
  const renamed = options.renamed ?? {}
  const type = problemType(error._tag)
  const document = Schema.Struct({
    type: Schema.Literal(type),
    title: Schema.Literal(options.title),
    status: Schema.Literal(options.status),
    detail: Schema.String,
    ...Object.fromEntries(Object.entries(fields).map(([name, field]) => [renamed[name] ?? name, field]))
  })
  const rename = (members: Record<string, unknown>, names: Readonly<Record<string, string>>) =>
    Object.fromEntries(Object.entries(members).map(([name, value]) => [names[name] ?? name, value]))
  const original = Object.fromEntries(Object.entries(renamed).map(([field, member]) => [member, field]))
  return Schema.transform(document, error, {
    strict: false,
    decode: ({ detail, status: _status, title: _title, type: _type, ...rest }) => ({
      ...rename(rest, original),
      message: detail
    }),
    encode: ({ message, ...rest }) => ({
      type,
      title: options.title,
      status: options.status,
      detail: message,
      ...rename(rest, renamed)
    })
  }).annotations({
    identifier: error._tag,
    ...(options.description === undefined ? {} : { description: options.description }),
    ...HttpApiSchema.annotations({ status: options.status }),
    [HttpApiSchema.AnnotationEncoding]: { kind: "Json", contentType: ProblemContentType }
  }) as unknown as Schema.Schema<Schema.Schema.Type<S>, Problem & { readonly _tag: string }>
}

/** One invalid input: where (`path`, field names from the body, path, query or headers) and what is wrong. */
export const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
}).annotations({ identifier: "InputIssue" })

export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  issues: Schema.Array(Issue),
  message: Schema.String
}) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  /** As RFC 6750 names them: no token sent, or one that is not accepted. */
  reason: Schema.Literal("missing_token", "invalid_token"),
  message: Schema.String
}) {}

export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("RouteNotFound", {
  method: Schema.String,
  path: Schema.String,
  message: Schema.String
}) {}

export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  method: Schema.String,
  allow: Schema.Array(Schema.String),
  message: Schema.String
}) {}

export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", {
  message: Schema.String
}) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limit: Schema.Int,
  message: Schema.String
}) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  accept: Schema.Array(Schema.String),
  message: Schema.String
}) {}

export class InternalServerError extends Schema.TaggedError<InternalServerError>()("InternalServerError", {
  message: Schema.String
}) {}
