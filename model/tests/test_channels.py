"""Channel table and checkpoint-name mapping."""

import json
import os
import tempfile
import unittest

import util  # noqa: F401  (thread settings)
from espmedsam.channels import channel_for_checkpoint, load_channels, select


class ChannelsTest(unittest.TestCase):
    def test_repository_table(self):
        chans = load_channels()
        self.assertEqual([(c["index"], c["name"]) for c in chans],
                         [(0, "dermoscopy"), (1, "xray"), (2, "ultrasound"), (3, "fundus"),
                          (4, "microscopy"), (5, "colonoscopy")])
        for c in chans:
            self.assertEqual(c["category"]["scheme"], "SCT")
            self.assertTrue(c["type"]["value"].isdigit())

    def test_select(self):
        chans = load_channels()
        got = select(chans, ["fundus", "0", 5, "fundus"])
        self.assertEqual([(c["name"], c["query"]) for c in got], [("fundus", 3), ("dermoscopy", 0), ("colonoscopy", 5)])
        with self.assertRaises(ValueError):
            select(chans, ["ct"])
        with self.assertRaises(ValueError):
            select(chans, [6])

    def test_checkpoint_names(self):
        cases = {"ESP_isic_best.pth": 0, "/x/ESP_lung_best.pth": 1, "ESP_ultrasound_best.pth": 2,
                 "ESP_udiat_best.pth": 2, "ESP_retinal_best.pth": 3, "ESP_drive_best.pth": 3,
                 "ESP_dsb_best.pth": 4, "ESP_cvccdb_best.pth": 5, "ESP_colon_best.pth": 5,
                 "ESP_joint_best.pth": None, "model.pth": None, "universal.pth": None}
        for name, want in cases.items():
            self.assertEqual(channel_for_checkpoint(name), want, name)

    def test_invalid_table(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "c.json")
            good = load_channels()
            for bad in ([], [dict(good[0], label="")], [good[0], good[0]],
                        [dict(good[0], category={"scheme": "SCT", "value": "1"})]):
                with open(p, "w") as f:
                    json.dump(bad, f)
                with self.assertRaises(ValueError):
                    load_channels(p)


if __name__ == "__main__":
    unittest.main()
