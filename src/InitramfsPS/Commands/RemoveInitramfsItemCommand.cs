using System.Management.Automation;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Removes entries from a rootfs (a copy of it) and passes the trimmed rootfs on.</summary>
    [Cmdlet(VerbsCommon.Remove, "InitramfsItem", SupportsShouldProcess = true, DefaultParameterSetName = PathSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class RemoveInitramfsItemCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string PresetSet = "Preset";
        private static readonly string[] InformationTags = { "InitramfsPS", "Removed" };

        /// <summary>Paths or patterns inside the rootfs to remove.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [Parameter(Position = 0, ParameterSetName = PresetSet)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(RootfsPathCompleter))]
        [ValidateNotNullOrEmpty]
        public string[]? Path { get; set; }

        /// <summary>Remove directories with everything below them.</summary>
        [Parameter]
        public SwitchParameter Recurse { get; set; }

        /// <summary>Usual trims: Docs, ManPages, Locales, PackageCaches, PythonCache.</summary>
        [Parameter(Mandatory = true, ParameterSetName = PresetSet)]
        [ValidateSet("Docs", "ManPages", "Locales", "PackageCaches", "PythonCache", IgnoreCase = true)]
        public string[]? Preset { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            // Expanding a piped image can fail (a corrupt layer): one error record, as every failure.
            Rootfs? rootfs = null;
            if (!Guard(InputObject.BaseObject, () => rootfs = RootfsToChange()) || rootfs is null)
            {
                return;
            }
            var result = Initramfs.Remove(rootfs, new RemoveOptions
            {
                Paths = Path ?? System.Array.Empty<string>(),
                Presets = Preset ?? System.Array.Empty<string>(),
                Recurse = Recurse,
                Approve = ShouldProcess,
                Removed = WriteVerbose,
                // As Remove-Item: a path that fails is one error, and the others are still removed.
                PathFailed = (path, ex) => WriteError(ToErrorRecord(ex, path)),
            });
            if (result.Declined)
            {
                // -WhatIf or a "no" at -Confirm: the rootfs was not trimmed as asked, so nothing flows
                // on to be exported by mistake. A path that failed wrote its error (which stops the
                // pipeline under -ErrorAction Stop); the copy trimmed of the others flows on.
                return;
            }
            string summary = result.Summary;
            WriteInformation(new InformationRecord(summary, MyInvocation.InvocationName), InformationTags);
            WriteVerbose(char.ToUpperInvariant(summary[0]) + summary[1..] + ".");
            WriteObject(rootfs);
        }
    }
}
