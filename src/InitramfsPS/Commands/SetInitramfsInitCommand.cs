using System.Management.Automation;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Sets /init, the program the kernel runs first: from a host script, from text, or generated to
    /// run the image config's command (or -Command) and power the VM off when it exits.
    /// </summary>
    [Cmdlet(VerbsCommon.Set, "InitramfsInit", DefaultParameterSetName = GenerateSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class SetInitramfsInitCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string ContentSet = "Content";
        private const string CommandSet = "Command";
        private const string GenerateSet = "Generate";

        /// <summary>A host file to use as /init (its bytes are taken as they are).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>The text of /init; CRLF line ends become LF, since the kernel would read "sh\r" as the interpreter.</summary>
        [Parameter(Mandatory = true, ParameterSetName = ContentSet)]
        [ValidateNotNullOrEmpty]
        public string Content { get; set; } = null!;

        /// <summary>The workload's argv for a generated /init, instead of the image config's Entrypoint and Cmd.</summary>
        [Parameter(Mandatory = true, ParameterSetName = CommandSet)]
        [AllowEmptyString]
        [ValidateCount(1, int.MaxValue)]
        public string[] Command { get; set; } = null!;

        /// <summary>The host name a generated /init sets.</summary>
        [Parameter(ParameterSetName = CommandSet)]
        [Parameter(ParameterSetName = GenerateSet)]
        [ValidatePattern(@"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z")]
        [ValidateLength(1, 64)]
        public string Hostname { get; set; } = "initramfs";

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard("/init", () =>
            {
                // A host file that is not on the file system fails before the image is expanded.
                string? host = ParameterSetName == PathSet ? FileSystemPath(Path, "HostPathNotFileSystem", "init script") : null;
                var rootfs = RootfsToChange();
                if (rootfs is null)
                {
                    return;
                }
                switch (ParameterSetName)
                {
                    case PathSet:
                        Initramfs.SetInitFromFile(rootfs, host!);
                        break;
                    case ContentSet:
                        Initramfs.SetInit(rootfs, Content);
                        break;
                    default:
                        foreach (string warning in Initramfs.GenerateInit(rootfs, ParameterSetName == CommandSet ? Command : null, Hostname))
                        {
                            WriteWarning(warning);
                        }
                        break;
                }
                WriteObject(rootfs);
            });
        }
    }
}
