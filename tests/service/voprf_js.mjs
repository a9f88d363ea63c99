// The JavaScript side of tests/service/test_voprf_interop.py: reads one JSON request on stdin,
// runs it with the extension's code (extension/shared/voprf.js, the vendored noble bundle) and
// writes one JSON answer on stdout. Bytes travel as hex. A VoprfError is an answer, not a crash.
import { readFileSync } from 'node:fs';
import { VoprfError, blindBatch, finalizeBatch, newTokenInputs } from '../../extension/shared/voprf.js';
import { ristretto255_oprf } from '../../extension/vendor/noble-voprf.js';

const { voprf } = ristretto255_oprf;
// noble 2.4.0 has voprf.evaluate at runtime; its declarations omit it.
/** @type {(secretKey: Uint8Array, input: Uint8Array) => Uint8Array} */
const evaluate = /** @type {any} */ (voprf).evaluate;

/** @param {string} text */
const bytes = (text) => new Uint8Array(Buffer.from(text, 'hex'));
/** @param {Uint8Array} data */
const hex = (data) => Buffer.from(data).toString('hex');

/**
 * @typedef {{input: string, blind: string, blinded: string}} HexToken
 * @typedef {{op: 'blind', count: number}
 *   | {op: 'finalize', publicKey: string, tokens: HexToken[], evaluated: string[], proof: string}
 *   | {op: 'blindEvaluate', secretKey: string, publicKey: string, blinded: string[]}
 *   | {op: 'evaluate', secretKey: string, inputs: string[]}} Request
 */

/**
 * @param {Request} request
 * @returns {object}
 */
function run(request) {
  switch (request.op) {
    case 'blind':
      return {
        tokens: blindBatch(newTokenInputs(request.count)).map((t) => ({
          input: hex(t.input),
          blind: hex(t.blind),
          blinded: hex(t.blinded),
        })),
      };
    case 'finalize': {
      const tokens = request.tokens.map((t) => ({
        input: bytes(t.input),
        blind: bytes(t.blind),
        blinded: bytes(t.blinded),
      }));
      const outputs = finalizeBatch(
        bytes(request.publicKey),
        tokens,
        request.evaluated.map(bytes),
        bytes(request.proof),
      );
      return { outputs: outputs.map(hex) };
    }
    case 'blindEvaluate': {
      const { evaluated, proof } = voprf.blindEvaluateBatch(
        bytes(request.secretKey),
        bytes(request.publicKey),
        request.blinded.map(bytes),
      );
      return { evaluated: evaluated.map(hex), proof: hex(proof) };
    }
    case 'evaluate':
      return {
        outputs: request.inputs.map((input) => hex(evaluate(bytes(request.secretKey), bytes(input)))),
      };
    default:
      throw new Error(`unknown op ${JSON.stringify(request)}`);
  }
}

let answer;
try {
  answer = run(JSON.parse(readFileSync(0, 'utf8')));
} catch (error) {
  if (!(error instanceof VoprfError)) throw error;
  answer = { error: { code: error.code, message: error.message } };
}
process.stdout.write(JSON.stringify(answer) + '\n');
