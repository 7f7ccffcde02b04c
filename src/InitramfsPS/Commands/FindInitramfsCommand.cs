using System.Collections.Generic;
using System.Management.Automation;
using InitramfsPS.Artifacts;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Lists the initramfs artifacts made from an image: the OCI 1.1 referrers of its manifest
    /// whose artifact type is this module's, through the referrers API or the referrers tag.
    /// A cmdlet of its own, not a parameter of Get-OciImage: that one answers what an image is,
    /// this one what refers to it, and its objects pipe into Save-Initramfs.
    /// </summary>
    [Cmdlet(VerbsCommon.Find, "Initramfs")]
    [OutputType(typeof(InitramfsArtifact))]
    public sealed class FindInitramfsCommand : InitramfsCmdlet
    {
        private const int ActivityId = 6;

        /// <summary>The image the artifacts were made from: <c>registry/repository:tag</c> or <c>@sha256:…</c>.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("ImageReference")]
        [ArgumentCompleter(typeof(ImageReferenceCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] Image { get; set; } = null!;

        /// <summary>The platform to pick from a multi-platform image, <c>os/arch[/variant]</c>; default linux on this machine's architecture.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(PlatformCompleter))]
        [ValidateNotNullOrEmpty]
        public string? Platform { get; set; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        [Parameter]
        [Credential]
        public PSCredential? Credential { get; set; }

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        [Parameter]
        public SwitchParameter AllowPlainHttp { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            foreach (string image in Image)
            {
                Guard(image, () =>
                {
                    var options = new FindOptions
                    {
                        Platform = Platform,
                        Credential = Credential?.GetNetworkCredential(),
                        CredentialOrigin = "-Credential",
                        AllowPlainHttp = AllowPlainHttp,
                        Verbose = Verbose,
                        Warning = Warning,
                    };
                    string activity = $"Finding the initramfs artifacts of {image}";
                    IReadOnlyList<InitramfsArtifact> found;
                    try
                    {
                        found = RunInBackground(token => Initramfs.FindArtifacts(image, options, token),
                            () => Progress(ActivityId, activity, "asking the registry for the image's referrers and reading their manifests", 0));
                    }
                    finally
                    {
                        CompleteProgress(ActivityId, activity);
                    }
                    WriteObject(found, enumerateCollection: true);
                });
            }
        }
    }
}
