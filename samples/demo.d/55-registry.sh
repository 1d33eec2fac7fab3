# Hotpatch enrolment from the registry: one Velociraptor collection of Windows.Hotpatch.Collect
# (samples/velociraptor/, written by samples/build_velociraptor.py): its Enrolment rows become
# hotpatch-enrolment events beside the logs' ones.
mkdir -p "$DEMO_OUT/registry"
hpforensics timeline samples/velociraptor -o "$DEMO_OUT/registry" --no-html
grep -h "Registry" "$DEMO_OUT/registry/timeline.csv" | cut -d, -f1 | tee "$DEMO_OUT/registry/enrolment.txt"
echo "registry -> $DEMO_OUT/registry/"
