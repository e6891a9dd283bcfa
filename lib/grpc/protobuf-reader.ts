/**
 * The protobuf wire format, read by hand for the messages of the inference hot path
 * (infer-wire.ts). Every read is bounds-checked against the end of the message (or of the
 * enclosing field) and throws a plain Error naming what was wrong and where; the server's
 * tolerant deserializer (malformed.ts) turns that into INVALID_ARGUMENT.
 */

/** Wire types (the low 3 bits of a tag). */
export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
export const FIXED32 = 5;

const TWO_32 = 2 ** 32;

export class ProtobufReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
    public end = buf.length,
  ) {
    this.pos = pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  private truncated(what: string): Error {
    return new Error(`${what} runs past the end of its message at offset ${this.pos}`);
  }

  /** A varint up to 32 bits of value as an unsigned number (higher bits are read and dropped, as protobuf does for int32). */
  uint32(): number {
    const buf = this.buf;
    let value = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.truncated('a varint');
      const byte = buf[this.pos++]!;
      if (shift < 32) value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value % TWO_32;
      shift += 7;
    }
    throw new Error(`a varint longer than 10 bytes at offset ${this.pos}`);
  }

  /** A 64-bit varint as [low 32 bits, high 32 bits], both unsigned. */
  private varint64(): [number, number] {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.truncated('a varint');
      const byte = buf[this.pos++]!;
      const bits = byte & 0x7f;
      if (i < 4) lo += bits * 2 ** (7 * i);
      else if (i === 4) {
        lo += (bits & 0x0f) * 2 ** 28;
        hi += bits >> 4;
      } else hi += bits * 2 ** (7 * i - 32);
      if (byte < 0x80) return [lo, hi % TWO_32];
    }
    throw new Error(`a varint longer than 10 bytes at offset ${this.pos}`);
  }

  /** A uint64 as a number when exact, else its decimal string (proto-loader's `longs: String` form for the large ones). */
  uint64(): number | string {
    const [lo, hi] = this.varint64();
    if (hi < 0x200000) return hi * TWO_32 + lo;
    return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
  }

  /** An int64 (two's complement) as a number when exact, else its decimal string. */
  int64(): number | string {
    const [lo, hi] = this.varint64();
    if (hi < 0x200000) return hi * TWO_32 + lo;
    if (hi >= 0xffe00000) return (hi - TWO_32) * TWO_32 + lo;
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
  }

  /** An int32: the low 32 bits of the varint, signed. */
  int32(): number {
    return this.uint32() | 0;
  }

  bool(): boolean {
    return this.uint32() !== 0;
  }

  float(): number {
    if (this.end - this.pos < 4) throw this.truncated('a fixed32');
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.end - this.pos < 8) throw this.truncated('a fixed64');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** The [start, end) of a length-delimited field's content, moving past it. */
  span(): [number, number] {
    const length = this.uint32();
    const start = this.pos;
    if (length > this.end - start) throw this.truncated(`a ${length}-byte field`);
    this.pos = start + length;
    return [start, start + length];
  }

  /** A bytes field as a view of the message (no copy). */
  bytes(): Buffer {
    const [start, end] = this.span();
    return this.buf.subarray(start, end);
  }

  string(): string {
    const [start, end] = this.span();
    return start === end ? '' : this.buf.toString('utf8', start, end);
  }

  /** A reader over the next length-delimited field's content (an embedded message or a packed array). */
  sub(): ProtobufReader {
    const [start, end] = this.span();
    return new ProtobufReader(this.buf, start, end);
  }

  /** Moves past a field of wire type `type`; groups and unknown wire types are errors. */
  skip(type: number, tagAt: number): void {
    switch (type) {
      case VARINT:
        this.uint32();
        return;
      case FIXED64:
        if (this.end - this.pos < 8) throw this.truncated('a fixed64');
        this.pos += 8;
        return;
      case LENGTH_DELIMITED:
        this.span();
        return;
      case FIXED32:
        if (this.end - this.pos < 4) throw this.truncated('a fixed32');
        this.pos += 4;
        return;
      default:
        throw new Error(`invalid wire type ${type} at offset ${tagAt}`);
    }
  }
}

/** Reads a repeated scalar field: packed (length-delimited) or one element per tag. */
export function readRepeated<T>(r: ProtobufReader, type: number, elementType: number, out: T[], read: (r: ProtobufReader) => T): void {
  if (type === LENGTH_DELIMITED && elementType !== LENGTH_DELIMITED) {
    const packed = r.sub();
    while (!packed.done) out.push(read(packed));
    return;
  }
  if (type !== elementType) throw new Error(`invalid wire type ${type} for a repeated field at offset ${r.pos}`);
  out.push(read(r));
}
