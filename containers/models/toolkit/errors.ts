/**
 * Errors a hook throws to choose the HTTP status. Anything else thrown by `inputFn` is answered 400
 * (the body could not be read as input); anything else thrown by `predictFn` or `outputFn` is 500.
 */
export class ModelServerError extends Error {
  override readonly name: string = 'ModelServerError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** 400: the body is of a supported type but is not valid input for this model. */
export class BadInputError extends ModelServerError {
  override readonly name = 'BadInputError';
  constructor(message: string) {
    super(400, message);
  }
}

/** 415: the request's Content-Type is not one the model reads. */
export class UnsupportedMediaTypeError extends ModelServerError {
  override readonly name = 'UnsupportedMediaTypeError';
  constructor(contentType: string, supported?: readonly string[]) {
    super(
      415,
      `unsupported Content-Type "${contentType}"${supported ? `; this model reads ${supported.join(', ')}` : ''}`,
    );
  }
}

/** 406: none of the media types in the request's Accept is one the model writes. */
export class NotAcceptableError extends ModelServerError {
  override readonly name = 'NotAcceptableError';
  constructor(accept: string, supported?: readonly string[]) {
    super(
      406,
      `cannot answer with Accept "${accept}"${supported ? `; this model writes ${supported.join(', ')}` : ''}`,
    );
  }
}
