package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dimse"
	"github.com/espnode/espnode/internal/version"
	"github.com/espnode/espnode/scp"
)

// queryKeywords are the keys `find` and `get` accept by name (PS3.6 keywords).
func queryKeywords() map[string]dcm.Tag {
	return map[string]dcm.Tag{
		"QueryRetrieveLevel": dcm.QueryRetrieveLevel, "PatientName": dcm.PatientName, "PatientID": dcm.PatientID,
		"IssuerOfPatientID": dcm.IssuerOfPatientID, "PatientBirthDate": dcm.PatientBirthDate, "PatientSex": dcm.PatientSex,
		"StudyInstanceUID": dcm.StudyInstanceUID, "StudyDate": dcm.StudyDate, "StudyTime": dcm.StudyTime,
		"AccessionNumber": dcm.AccessionNumber, "StudyID": dcm.StudyID, "StudyDescription": dcm.StudyDescription,
		"ReferringPhysicianName": dcm.ReferringPhysicianName, "ModalitiesInStudy": dcm.ModalitiesInStudy,
		"SOPClassesInStudy": dcm.SOPClassesInStudy, "NumberOfStudyRelatedSeries": dcm.NumberOfStudyRelatedSeries,
		"NumberOfStudyRelatedInstances": dcm.NumberOfStudyRelatedInstances, "NumberOfPatientRelatedStudies": dcm.NumberOfPatientRelatedStudies,
		"NumberOfPatientRelatedSeries": dcm.NumberOfPatientRelatedSeries, "NumberOfPatientRelatedInstances": dcm.NumberOfPatientRelatedInstances,
		"SeriesInstanceUID": dcm.SeriesInstanceUID, "Modality": dcm.Modality, "SeriesNumber": dcm.SeriesNumber,
		"SeriesDescription": dcm.SeriesDescription, "SeriesDate": dcm.SeriesDate, "SeriesTime": dcm.SeriesTime,
		"BodyPartExamined": dcm.BodyPartExamined, "NumberOfSeriesRelatedInstances": dcm.NumberOfSeriesRelatedInstances,
		"SOPInstanceUID": dcm.SOPInstanceUID, "SOPClassUID": dcm.SOPClassUID, "InstanceNumber": dcm.InstanceNumber,
		"NumberOfFrames": dcm.NumberOfFrames, "RetrieveAETitle": dcm.RetrieveAETitle, "SpecificCharacterSet": dcm.SpecificCharacterSet,
	}
}

// keyFlags collects repeated -k KEY[=VALUE] flags.
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, ",") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

// queryFlags are the flags find and get share.
type queryFlags struct {
	clientFlags
	level string
	root  string
	keys  keyFlags
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	q.clientFlags.register(fs)
	fs.StringVar(&q.level, "level", "STUDY", "query/retrieve level: PATIENT, STUDY, SERIES or IMAGE")
	fs.StringVar(&q.root, "root", "study", "information model: study or patient")
	fs.Var(&q.keys, "k", "key `KEYWORD[=VALUE]` (repeatable), e.g. -k PatientName='DOE^*' -k StudyDate=20240101-")
}

// identifier builds the query identifier; the keyword names come back in request order.
func (q *queryFlags) identifier(defaults []string) ([]dcm.Element, []string, error) {
	words := queryKeywords()
	elems := []dcm.Element{dcm.StrElement(dcm.QueryRetrieveLevel, strings.ToUpper(q.level))}
	var names []string
	seen := map[dcm.Tag]bool{dcm.QueryRetrieveLevel: true}
	add := func(kv string) error {
		name, value, _ := strings.Cut(kv, "=")
		tag, ok := words[name]
		if !ok {
			known := make([]string, 0, len(words))
			for w := range words {
				known = append(known, w)
			}
			sort.Strings(known)
			return fmt.Errorf("unknown key %q; known keys: %s", name, strings.Join(known, ", "))
		}
		if seen[tag] {
			for i := range elems {
				if elems[i].Tag == tag {
					elems[i] = dcm.StrElement(tag, value)
				}
			}
			return nil
		}
		seen[tag] = true
		elems = append(elems, dcm.StrElement(tag, value))
		names = append(names, name)
		return nil
	}
	for _, kv := range append(append([]string{}, defaults...), q.keys...) {
		if err := add(kv); err != nil {
			return nil, nil, err
		}
	}
	// Values come from the command line in UTF-8: say so, unless the user set the key.
	if !seen[dcm.SpecificCharacterSet] && slices.ContainsFunc(elems, func(e dcm.Element) bool { return !isASCII(e.Value) }) {
		elems = append(elems, dcm.StrElement(dcm.SpecificCharacterSet, "ISO_IR 192"))
	}
	return elems, names, nil
}

func (q *queryFlags) sopClass(find, move, get bool) (string, error) {
	switch strings.ToLower(q.root) {
	case "study":
		if strings.EqualFold(q.level, "PATIENT") {
			return "", errors.New("--level PATIENT needs --root patient")
		}
		switch {
		case find:
			return scp.StudyRootFind, nil
		case move:
			return scp.StudyRootMove, nil
		}
		return scp.StudyRootGet, nil
	case "patient":
		switch {
		case find:
			return scp.PatientRootFind, nil
		case move:
			return scp.PatientRootMove, nil
		}
		return scp.PatientRootGet, nil
	}
	return "", fmt.Errorf("--root %q: want study or patient", q.root)
}

// defaultReturnKeys are shown when the user names none.
func defaultReturnKeys(level string) []string {
	switch strings.ToUpper(level) {
	case "PATIENT":
		return []string{"PatientName", "PatientID", "PatientBirthDate", "NumberOfPatientRelatedStudies"}
	case "SERIES":
		return []string{"StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances"}
	case "IMAGE":
		return []string{"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber"}
	}
	return []string{"PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "AccessionNumber", "ModalitiesInStudy", "StudyDescription", "NumberOfStudyRelatedInstances"}
}

func runFind(ctx context.Context, env *cliEnv, args []string) error {
	fs := env.newFlagSet("find", "usage: espnode find [--root study|patient] [--level STUDY] [-k KEY[=VALUE]]... [--json] HOST:PORT",
		"Queries a peer with C-FIND; with no -k, a level's usual keys are asked for.")
	var q queryFlags
	q.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per match")
	if err := parseArgs(fs, args, 1, 1); err != nil {
		return err
	}
	sopClass, err := q.sopClass(true, false, false)
	if err != nil {
		return err
	}
	var defaults []string
	if len(q.keys) == 0 {
		defaults = defaultReturnKeys(q.level)
	}
	ident, names, err := q.identifier(defaults)
	if err != nil {
		return err
	}
	c, err := dimse.Dial(ctx, fs.Arg(0), q.config([]dimse.PresentationContextRQ{{AbstractSyntax: sopClass,
		TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}}}))
	if err != nil {
		return err
	}
	defer c.Release(ctx)
	pc, _ := c.FindContext(sopClass, "")
	words := queryKeywords()
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, strings.Join(names, "\t"))
	}
	n := 0
	identBytes, err := dcm.Encode(dcm.NewDataSet(ident...), pc.TransferSyntax)
	if err != nil {
		return err
	}
	st, err := c.Find(ctx, sopClass, identBytes, func(b []byte) error {
		elems, err := dcm.Parse(b, pc.TransferSyntax)
		if err != nil {
			return fmt.Errorf("response identifier: %w", err)
		}
		n++
		row := make([]string, len(names))
		obj := map[string]string{}
		for i, name := range names {
			if e := elems.Find(words[name]); e != nil {
				// Printed in UTF-8, decoded from the response's character set.
				row[i] = elems.Unicode(words[name])
				obj[name] = row[i]
			}
		}
		if *asJSON {
			b, _ := json.Marshal(obj)
			_, err = fmt.Fprintln(env.stdout, string(b))
			return err
		}
		_, err = fmt.Fprintln(tw, strings.Join(row, "\t"))
		return err
	})
	tw.Flush()
	if err != nil {
		return err
	}
	if st.Code != dimse.StatusSuccess {
		return fmt.Errorf("C-FIND ended with status %v after %d matches", st, n)
	}
	fmt.Fprintf(env.stderr, "%d matches\n", n)
	return nil
}

// retrieveClasses are the Storage SOP classes `get` accepts sub-operations for, by default: the
// images the node segments and the SEGs it makes.
var retrieveClasses = []string{
	"1.2.840.10008.5.1.4.1.1.66.4",   // Segmentation
	"1.2.840.10008.5.1.4.1.1.1",      // CR
	"1.2.840.10008.5.1.4.1.1.1.1",    // DX for presentation
	"1.2.840.10008.5.1.4.1.1.1.2",    // MG for presentation
	"1.2.840.10008.5.1.4.1.1.2",      // CT
	"1.2.840.10008.5.1.4.1.1.4",      // MR
	"1.2.840.10008.5.1.4.1.1.6.1",    // US
	"1.2.840.10008.5.1.4.1.1.3.1",    // US multi-frame
	"1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture
	"1.2.840.10008.5.1.4.1.1.77.1.1", // VL endoscopic
	"1.2.840.10008.5.1.4.1.1.77.1.2", // VL microscopic
	"1.2.840.10008.5.1.4.1.1.77.1.4", // VL photographic
	"1.2.840.10008.5.1.4.1.1.77.1.5.1",
	"1.2.840.10008.5.1.4.1.1.77.1.6", // whole slide
	"1.2.840.10008.5.1.4.1.1.77.1.7", // dermoscopic photography
}

func runGet(ctx context.Context, env *cliEnv, args []string) error {
	fs := env.newFlagSet("get", "usage: espnode get [--root study|patient] [--level STUDY] -k KEY=VALUE... [-o DIR] HOST:PORT",
		"Retrieves with C-GET; the level's unique key must have a value, e.g. -k StudyInstanceUID=1.2.3")
	var q queryFlags
	q.register(fs)
	out := fs.String("o", ".", "output `folder`: files are written as SOP_INSTANCE_UID.dcm")
	var extraTS, extraClasses keyFlags
	fs.Var(&extraTS, "transfer-syntax", "also accept `UID` for every SOP class (repeatable; files are never transcoded, so compressed instances need theirs)")
	fs.Var(&extraClasses, "sop-class", "also accept the Storage SOP class `UID` (repeatable)")
	if err := parseArgs(fs, args, 1, 1); err != nil {
		return err
	}
	sopClass, err := q.sopClass(false, false, true)
	if err != nil {
		return err
	}
	ident, _, err := q.identifier(nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	syntaxes := append([]string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}, extraTS...)
	contexts := []dimse.PresentationContextRQ{{AbstractSyntax: sopClass, TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian}}}
	var roles []dimse.RoleSelection
	for _, class := range append(append([]string{}, retrieveClasses...), extraClasses...) {
		// One context per transfer syntax: the SCP sends each file in the syntax it is stored in.
		for _, ts := range syntaxes {
			contexts = append(contexts, dimse.PresentationContextRQ{AbstractSyntax: class, TransferSyntaxes: []string{ts}})
		}
		roles = append(roles, dimse.RoleSelection{SOPClassUID: class, SCURole: false, SCPRole: true})
	}
	if len(contexts) > 128 {
		return fmt.Errorf("%d presentation contexts do not fit in one association (128); pass fewer --transfer-syntax or --sop-class", len(contexts))
	}
	cfg := q.config(contexts)
	cfg.RoleSelections = roles
	c, err := dimse.Dial(ctx, fs.Arg(0), cfg)
	if err != nil {
		return err
	}
	defer c.Release(ctx)
	pc, _ := c.FindContext(sopClass, "")
	var written int
	var writeErrs []error
	identBytes, err := dcm.Encode(dcm.NewDataSet(ident...), pc.TransferSyntax)
	if err != nil {
		return err
	}
	res, err := c.Get(ctx, sopClass, identBytes,
		func(rq *dimse.CStoreRQ, spc *dimse.PresentationContext, data io.Reader) dimse.Status {
			if err := writePart10(*out, rq, spc, data, q.calledAE); err != nil {
				writeErrs = append(writeErrs, err)
				return dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: err.Error()}
			}
			written++
			return dimse.Status{Code: dimse.StatusSuccess}
		}, nil)
	if err != nil {
		return err
	}
	for _, e := range writeErrs {
		fmt.Fprintf(env.stderr, "write: %v\n", e)
	}
	sub := res.SubOperations
	fmt.Fprintf(env.stdout, "retrieved %d, failed %d, warning %d; status %v\n", sub.Completed, sub.Failed, sub.Warning, res.Status)
	if res.Status.Code != dimse.StatusSuccess {
		return exitError{1}
	}
	return nil
}

// writePart10 stores one received data set as a Part-10 file, durably enough for a CLI: written
// to a temporary name and renamed.
func writePart10(dir string, rq *dimse.CStoreRQ, pc *dimse.PresentationContext, data io.Reader, source string) error {
	if err := dcm.CheckUID(rq.AffectedSOPInstanceUID); err != nil {
		return fmt.Errorf("SOP instance UID %q: %w", rq.AffectedSOPInstanceUID, err)
	}
	f, err := os.CreateTemp(dir, ".get-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	err = dcm.WriteFileMeta(w, dcm.FileMeta{MediaStorageSOPClassUID: rq.AffectedSOPClassUID, MediaStorageSOPInstanceUID: rq.AffectedSOPInstanceUID,
		TransferSyntaxUID: pc.TransferSyntax, SourceApplicationEntityTitle: source,
		ImplementationClassUID: version.ImplementationClassUID, ImplementationVersionName: version.ImplementationVersionName()})
	if err == nil {
		_, err = io.Copy(w, data)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, rq.AffectedSOPInstanceUID+".dcm"))
}

func isASCII(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c >= 0x80 })
}
