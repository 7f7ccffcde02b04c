# A real Debian rootfs for tests: `mmdebstrap --variant=minbase bookworm` turned into an OCI image
# layout with umoci, built once per machine and cached under <repo>/out/test-cache/.
#
# Needs: root (mmdebstrap keeps owners and device nodes only as root), mmdebstrap and umoci
# (tools/install-deps.sh), and HTTP access to the Debian mirror (deb.debian.org) the first time.
# The first build takes about 90 s; later calls return at once. A lock file keeps test files run
# in parallel from building it twice.

Set-StrictMode -Version Latest

$script:RepoRoot = (Resolve-Path "$PSScriptRoot/../..").Path
$script:Mirror = 'http://deb.debian.org/debian'
$script:Suite = 'bookworm'
# mmdebstrap honours SOURCE_DATE_EPOCH: with it, two builds from one mirror snapshot give the
# same tar byte for byte (checked here), so exports of this image can be pinned by sha256
# (Pinned.Tests.ps1). The folder is named after it, so a cache built without it is not reused.
$script:SourceDateEpoch = '1747699200'

function Invoke-DebianTool {
    param([Parameter(Mandatory)][string] $FilePath, [string[]] $ArgumentList = @())
    $output = & $FilePath @ArgumentList 2>&1
    if ($LASTEXITCODE -ne 0) {
        throw "$FilePath $($ArgumentList -join ' ') failed with exit code ${LASTEXITCODE}:`n$($output -join "`n")"
    }
}

function Enter-DebianCacheLock {
    param([string] $LockPath, [int] $TimeoutSeconds = 900)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        try {
            # FileShare.None: a second process (another test file run in parallel) waits here.
            return [System.IO.File]::Open($LockPath, 'OpenOrCreate', 'ReadWrite', 'None')
        }
        catch [System.IO.IOException] {
            if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out waiting for the lock '$LockPath'." }
            Start-Sleep -Milliseconds 500
        }
    }
}

function Get-DebianMinbaseLayout {
    <#
    .SYNOPSIS
    Returns an OCI image layout holding a Debian bookworm minbase rootfs (one layer), building it the first time.
    .DESCRIPTION
    The layout is <repo>/out/test-cache/debian-minbase-<epoch>/layout (override the cache folder with
    -CacheDirectory or $env:INITRAMFSPS_TEST_CACHE). The base tag `minbase` has the config Cmd
    /bin/bash. With -Cmd, -Entrypoint, -Env, -WorkingDir or -User, an extra tag (named from a hash
    of those values, so the same values reuse it) gets that config over the same layer.
    Needs root, mmdebstrap and umoci, and the Debian mirror for the first build.
    .OUTPUTS
    PSCustomObject: Path (layout directory), Tag, Reference ("oci:<path>:<tag>"), Tar (the rootfs tar).
    #>
    [CmdletBinding()]
    param(
        [string[]] $Cmd,
        [string[]] $Entrypoint,
        [string[]] $Env,
        [string] $WorkingDir,
        [string] $User,
        [string] $CacheDirectory = ($env:INITRAMFSPS_TEST_CACHE ?? (Join-Path $script:RepoRoot 'out/test-cache'))
    )
    foreach ($tool in 'mmdebstrap', 'umoci') {
        if (-not (Get-Command $tool -CommandType Application -ErrorAction SilentlyContinue)) {
            throw "Get-DebianMinbaseLayout needs '$tool' (tools/install-deps.sh installs it)."
        }
    }
    $base = Join-Path $CacheDirectory "debian-minbase-$script:SourceDateEpoch"
    [void][System.IO.Directory]::CreateDirectory($base)
    $tar = Join-Path $base "$script:Suite-minbase.tar"
    $layout = Join-Path $base 'layout'
    $done = Join-Path $base 'layout.done'

    $lock = Enter-DebianCacheLock (Join-Path $base '.lock')
    try {
        if (-not (Test-Path -LiteralPath $done)) {
            if ((id -u) -ne '0') { throw 'Get-DebianMinbaseLayout needs root: mmdebstrap keeps owners and device nodes only as root.' }
            foreach ($p in $layout, "$tar.partial") {
                if (Test-Path -LiteralPath $p) { Remove-Item -LiteralPath $p -Recurse -Force }
            }
            if (-not (Test-Path -LiteralPath $tar)) {
                # mmdebstrap picks the format from the name: write a .tar, then rename when complete.
                $partial = Join-Path $base "partial-$([guid]::NewGuid().ToString('N')).tar"
                try {
                    $env:SOURCE_DATE_EPOCH = $script:SourceDateEpoch
                    try { Invoke-DebianTool mmdebstrap @('--quiet', '--variant=minbase', $script:Suite, $partial, $script:Mirror) }
                    finally { Remove-Item Env:SOURCE_DATE_EPOCH -ErrorAction SilentlyContinue }
                    Move-Item -LiteralPath $partial -Destination $tar -Force
                }
                finally {
                    if (Test-Path -LiteralPath $partial) { Remove-Item -LiteralPath $partial -Force }
                }
            }
            Invoke-DebianTool umoci @('init', '--layout', $layout)
            Invoke-DebianTool umoci @('new', '--image', "${layout}:minbase")
            Invoke-DebianTool umoci @('raw', 'add-layer', '--image', "${layout}:minbase", $tar)
            Invoke-DebianTool umoci @('config', '--image', "${layout}:minbase", '--config.cmd', '/bin/bash')
            Set-Content -LiteralPath $done -Value (Get-Date -Format o)
        }

        $tag = 'minbase'
        $configArgs = [System.Collections.Generic.List[string]]::new()
        foreach ($c in @($Entrypoint | Where-Object { $null -ne $_ })) { $configArgs.Add('--config.entrypoint'); $configArgs.Add($c) }
        foreach ($c in @($Cmd | Where-Object { $null -ne $_ })) { $configArgs.Add('--config.cmd'); $configArgs.Add($c) }
        foreach ($e in @($Env | Where-Object { $null -ne $_ })) { $configArgs.Add('--config.env'); $configArgs.Add($e) }
        if ($WorkingDir) { $configArgs.Add('--config.workingdir'); $configArgs.Add($WorkingDir) }
        if ($PSBoundParameters.ContainsKey('User')) { $configArgs.Add('--config.user'); $configArgs.Add($User) }
        if ($configArgs.Count -gt 0) {
            $hash = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes(($configArgs -join "`0")))
            $tag = 'minbase-' + [Convert]::ToHexString($hash).Substring(0, 16).ToLowerInvariant()
            $index = Get-Content -LiteralPath (Join-Path $layout 'index.json') -Raw | ConvertFrom-Json
            $has = @($index.manifests | Where-Object { $_.annotations -and $_.annotations.'org.opencontainers.image.ref.name' -eq $tag }).Count -gt 0
            if (-not $has) {
                # --clear replaces the base tag's Cmd and Entrypoint rather than appending to them.
                $clear = @('--clear=config.cmd', '--clear=config.entrypoint')
                Invoke-DebianTool umoci (@('config', '--image', "${layout}:minbase", '--tag', $tag) + $clear + $configArgs)
            }
        }
    }
    finally {
        $lock.Dispose()
    }
    [pscustomobject]@{
        Path      = $layout
        Tag       = $tag
        Reference = "oci:${layout}:$tag"
        Tar       = $tar
    }
}

Export-ModuleMember -Function Get-DebianMinbaseLayout
