/**
 * A stand-in InferGateway over the core InferenceService, until the front door
 * (lib/frontdoor) exists: inference goes straight to the core (admission and validation
 * happen there), refusals are not counted, control actions run as they are. The gRPC
 * transport only ever talks to an InferGateway, so swapping this for the FrontDoor changes
 * one line of wiring.
 */
import type { InferenceService } from '../core/types';
import type { ControlCall, InferCall, InferGateway, RequestContext } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';

/** InferGateway over `service`, with the id echo the front door will own. */
export class ServiceGateway implements InferGateway {
  constructor(private readonly service: InferenceService) {}

  async infer(call: InferCall): Promise<InferResponse> {
    const response = await this.service.infer(call.model, call.version, call.request, call.signal);
    if (response.id === undefined && call.request.id !== undefined) response.id = call.request.id;
    return response;
  }

  refused(_model: string | undefined, _error: unknown, _context: RequestContext): void {
    // The core has no failure counter for requests it never saw; the front door will count them.
  }

  async control<T>(_call: ControlCall, run: () => T | Promise<T>): Promise<T> {
    return run();
  }
}
