// dicomweb-client against the node: STOW-RS of the files given, then QIDO-RS and WADO-RS of what
// was stored. Writes what it retrieved into the output folder and a JSON report on stdout, for
// interop/dicomweb_test.go to judge with the node's own reading of the files.
//
// usage: node dicomweb.js BASE_URL OUT_DIR STUDY_UID FILE...
'use strict';

global.XMLHttpRequest = require('xhr2');
const fs = require('fs');
const path = require('path');
const { api } = require('dicomweb-client');

const [base, outDir, study, ...files] = process.argv.slice(2);
const client = new api.DICOMwebClient({ url: base });

const value = (ds, tag) => (ds[tag] && ds[tag].Value ? ds[tag].Value[0] : undefined);
const save = (name, buf) => {
  fs.writeFileSync(path.join(outDir, name), Buffer.from(buf));
  return name;
};

(async () => {
  const report = {};
  const datasets = files.map((f) => {
    const b = fs.readFileSync(f);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  });
  const stow = await client.storeInstances({ datasets });
  report.stow = typeof stow === 'string' ? JSON.parse(stow) : stow;

  report.studies = await client.searchForStudies({ queryParams: { StudyInstanceUID: study } });
  report.studiesByName = await client.searchForStudies({ queryParams: { PatientName: '*', limit: 5 } });
  const series = await client.searchForSeries({ studyInstanceUID: study });
  report.series = series;
  report.instances = [];
  report.retrieved = [];
  for (const s of series) {
    const seriesUID = value(s, '0020000E');
    const instances = await client.searchForInstances({ studyInstanceUID: study, seriesInstanceUID: seriesUID });
    for (const inst of instances) {
      const sop = value(inst, '00080018');
      report.instances.push(inst);
      const ids = { studyInstanceUID: study, seriesInstanceUID: seriesUID, sopInstanceUID: sop };
      const got = { sop, series: seriesUID };
      got.instance = save(`${sop}.dcm`, await client.retrieveInstance(ids));
      const metadata = await client.retrieveInstanceMetadata(ids);
      got.metadata = metadata[0];
      if (metadata[0]['7FE00010']) {
        const frames = await client.retrieveInstanceFrames({ ...ids, frameNumbers: [1] });
        got.frame = save(`${sop}.frame1`, frames[0]);
        const bulk = await client.retrieveBulkData({ BulkDataURI: metadata[0]['7FE00010'].BulkDataURI });
        got.bulk = save(`${sop}.bulk`, Array.isArray(bulk) ? bulk[0] : bulk);
        const png = await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/png' }] });
        got.rendered = save(`${sop}.png`, Array.isArray(png) ? png[0] : png);
      }
      report.retrieved.push(got);
    }
  }
  const seriesUID = value(series[0], '0020000E');
  report.seriesMetadata = (await client.retrieveSeriesMetadata({ studyInstanceUID: study, seriesInstanceUID: seriesUID })).length;
  report.studyMetadata = (await client.retrieveStudyMetadata({ studyInstanceUID: study })).length;
  const studyParts = await client.retrieveStudy({ studyInstanceUID: study });
  report.studyParts = studyParts.length;
  process.stdout.write(JSON.stringify(report));
})().catch((err) => {
  process.stderr.write(`dicomweb-client: ${err && err.stack ? err.stack : JSON.stringify(err)}\n`);
  process.exit(1);
});
