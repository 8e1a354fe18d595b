"""Prints the DICOM JSON model pydicom makes of each file given, one line each: values longer
than the threshold in the binary VRs are by reference ("BULK"). dicomweb's tests compare the
node's JSON with it."""
import json
import sys

import pydicom

threshold = int(sys.argv[1])
for path in sys.argv[2:]:
    ds = pydicom.dcmread(path)
    print(json.dumps(ds.to_json_dict(bulk_data_threshold=threshold, bulk_data_element_handler=lambda el: "BULK")))
