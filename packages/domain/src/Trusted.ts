/**
 * Construction options for values built only from values that were already
 * decoded (a command's fields, a fresh UUID): validating them again would only
 * cost. Never for input from outside.
 *
 * @since 0.1.0
 */
export const trusted = { disableValidation: true } as const
