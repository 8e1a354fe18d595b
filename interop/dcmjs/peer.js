// A dcmjs-dimse peer for the interop tests: one operation against the node, its outcome as one
// JSON line on stdout. Usage: node peer.js '{"op":"echo","host":"127.0.0.1","port":11112,...}'
//   echo                         C-ECHO
//   store  files: [...]          C-STORE of each file
//   find   level, keys: {...}    C-FIND (study root); the matches' identifiers
//   move   destination, study    C-MOVE of a study
//   get    study, out            C-GET of a study; received files written to out
// Segmentation Storage is missing from dcmjs-dimse's storage SOP class list: it is added to the
// association here (for C-GET's SCP role and for C-STORE), the peer's gap, not the node's.
'use strict';

const fs = require('fs');
const path = require('path');
const dimse = require('dcmjs-dimse');

const { Client, Dataset } = dimse;
const { Association, PresentationContext } = dimse.association;
const { CEchoRequest, CStoreRequest, CFindRequest, CMoveRequest, CGetRequest } = dimse.requests;
const { CStoreResponse } = dimse.responses;
const { Status, TransferSyntax } = dimse.constants;

const segmentationStorage = '1.2.840.10008.5.1.4.1.1.66.4';

dimse.log.setLevel('error');
// dcmjs warns on every private tag it has no name for; the result line is what counts.
console.warn = () => {};

const args = JSON.parse(process.argv[2]);
const result = { op: args.op, responses: [], stored: [] };
const client = new Client();
let failed = null;

function status(r) {
  return r.getStatus();
}

function record(r) {
  const entry = { status: status(r) };
  if (typeof r.getCompleted === 'function') {
    entry.completed = r.getCompleted();
    entry.failures = r.getFailures();
    entry.warnings = r.getWarnings();
    entry.remaining = r.getRemaining();
  }
  if (r.hasDataset && r.hasDataset()) {
    entry.dataset = r.getDataset().getElements();
  }
  result.responses.push(entry);
}

switch (args.op) {
  case 'echo': {
    const rq = new CEchoRequest();
    rq.on('response', record);
    client.addRequest(rq);
    break;
  }
  case 'store': {
    for (const f of args.files) {
      const rq = new CStoreRequest(f);
      rq.on('response', record);
      client.addRequest(rq);
    }
    client.addAdditionalPresentationContext(
      new PresentationContext(0, segmentationStorage, TransferSyntax.ExplicitVRLittleEndian));
    break;
  }
  case 'find': {
    const rq = args.level === 'SERIES'
      ? CFindRequest.createSeriesFindRequest(args.keys)
      : CFindRequest.createStudyFindRequest(args.keys);
    rq.on('response', record);
    client.addRequest(rq);
    break;
  }
  case 'move': {
    const rq = CMoveRequest.createStudyMoveRequest(args.destination, args.study);
    rq.on('response', record);
    client.addRequest(rq);
    break;
  }
  case 'get': {
    const rq = CGetRequest.createStudyGetRequest(args.study);
    rq.on('response', record);
    client.addRequest(rq);
    // Segmentation Storage, which the request's own list lacks, with the SCP role. An additional
    // context keeps only its syntaxes, so the role is set where the association makes it.
    client.addAdditionalPresentationContext(
      new PresentationContext(0, segmentationStorage, TransferSyntax.ExplicitVRLittleEndian), true);
    const add = Association.prototype.addPresentationContext;
    Association.prototype.addPresentationContext = function (abstractSyntaxUid, ...rest) {
      const id = add.call(this, abstractSyntaxUid, ...rest);
      if (abstractSyntaxUid === segmentationStorage) {
        const pc = this.getPresentationContext(id);
        pc.setUserRole(false);
        pc.setProviderRole(true);
      }
      return id;
    };
    fs.mkdirSync(args.out, { recursive: true });
    client.on('cStoreRequest', (request, callback) => {
      const ds = request.getDataset();
      const uid = request.getAffectedSopInstanceUid();
      ds.toFile(path.join(args.out, uid + '.dcm'));
      result.stored.push(uid);
      const rsp = CStoreResponse.fromRequest(request);
      rsp.setStatus(Status.Success);
      callback(rsp);
    });
    break;
  }
  default:
    console.error('unknown op ' + args.op);
    process.exit(2);
}

client.on('associationAccepted', () => { result.accepted = true; });
client.on('associationRejected', (r) => { result.rejected = r; });
client.on('associationReleased', () => { result.released = true; });
client.on('networkError', (e) => { failed = String(e); });
client.on('closed', () => {
  if (failed) {
    result.error = failed;
  }
  console.log(JSON.stringify(result));
  process.exit(failed || !result.released ? 1 : 0);
});
client.send(args.host, args.port, args.calling || 'DCMJS', args.called || 'ESPNODE', {
  connectTimeout: 10000,
  associationTimeout: 30000,
  pduTimeout: 30000,
  securityOptions: args.tls,
});
