#Requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests and demonstrates the InitramfsPS module.

.DESCRIPTION
    Tasks run in the order given; Test, Package, Demo and HelpSkeleton run Build first, and each
    task runs once.

      Clean         removes out/ and the build folders.
      Build         publishes src/InitramfsPS (the cmdlets, with the engine
                    src/InitramfsPS.Core), assembles the module in out/InitramfsPS/ (its
                    ZstdSharp.dll with methods marked for full optimisation, see
                    tools/build/Set-AggressiveOptimization.ps1), and runs Help.
      Help          writes the module's help from docs/help/*.md and the built cmdlets:
                    out/InitramfsPS/en-US/InitramfsPS.dll-Help.xml (MAML) and
                    about_InitramfsPS.help.txt; then checks Get-Help reads it.
      HelpSkeleton  writes docs/help/<Cmdlet>.md for new cmdlets and parameter blocks for new
                    parameters (placeholder prose), removes blocks of parameters that are gone,
                    keeps the prose already written; then runs Help.
      Test          runs the engine's unit tests (`dotnet test` on tests/InitramfsPS.Core.Tests,
                    TRX in out/unit-test-results/), then tests/Pester/*.Tests.ps1 with Pester
                    6.2.0 in a child pwsh; the last line printed is `N passed, N failed`,
                    counting both; NUnit XML goes to out/test-results.xml. -TestPath, -TestName
                    or -Tag select Pester tests only: the unit tests are then not run.
      Package       writes out/InitramfsPS.<version>.nupkg from out/InitramfsPS/ with
                    Publish-PSResource (tools/build/New-ModulePackage.ps1), for Install-PSResource
                    from a local repository on out/; the user's repository list is left as it is.
                    Also writes out/InitramfsPS.Core.<version>.nupkg, the engine as a C# library
                    (dotnet pack, tools/build/New-CorePackage.ps1), with the manifest's version.
      Demo          makes a busybox OCI image in out/demo/layout (no network), turns it into
                    out/demo/demo.cpio.zst with the module, and prints the QEMU line that boots it.
      Bench         (never part of Test) builds a Debian minbase and a synthetic 1 GB / 100k-entry
                    image (cached in out/bench-cache), pushes them to a local registry and compares
                    Export-Initramfs with native zstd/pigz and skopeo+umoci+cpio+zstd: medians over
                    -Runs, peak RSS, PASS/FAIL per target of issue 6. -Quick: a small image, one run.
                    -VerifyCost: only exports with the checks of contents at use on and off, in turn.
                    -Baseline <git revision>: this build against that revision's (built in a
                    worktree under out/bench-baseline/), in alternating rounds: warm exports and
                    end to end, before / after ratios and PASS/FAIL for "not slower".
                    -Rebuild: only issue 16's targets: rebuilds with one file changed against
                    native zstd, and the first export with an empty part cache.
      Fuzz          coverage-guided fuzzing of the readers (Test runs a short one, in
                    tests/Pester/Fuzz.Tests.ps1): publishes the harness tests/Fuzz, instruments
                    InitramfsPS.Core.dll with SharpFuzz's sharpfuzz tool, and runs afl-fuzz
                    (tools/install-deps.sh installs Debian's afl++) for -FuzzSeconds on each
                    -FuzzTarget (tar, cpio, manifest) from the harness's generated seeds
                    (tools/fuzz/Invoke-AflFuzz.ps1; findings in out/afl/<target>/). Each distinct
                    crash is copied into tests/Fuzz/crashes/ as <target>-afl-<hash>.bin, the
                    regression inputs the Fuzz tests replay, and the task fails naming them.

.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Build,Demo -Boot

.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Test -TestPath tests/Pester/<Name>.Tests.ps1 -TestName '*hardlink*'

.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Fuzz -FuzzTarget cpio -FuzzSeconds 600
#>
[CmdletBinding()]
param(
    # Clean, Build, Help, HelpSkeleton, Test, Package, Demo, Bench, Fuzz. `dotnet pwsh ./build.ps1
    # -Task Build,Demo` hands the script one string, so commas are split here (for every list
    # parameter).
    [ArgumentCompletions('Clean', 'Build', 'Help', 'HelpSkeleton', 'Test', 'Package', 'Demo', 'Bench', 'Fuzz')]
    [string[]]$Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string]$Configuration = 'Release',

    # Test: only these test files or folders (default: every tests/Pester/*.Tests.ps1).
    [string[]]$TestPath,
    # Test: Pester full-name filters, wildcards allowed.
    [string[]]$TestName,
    # Test: Pester tag filters.
    [string[]]$Tag,
    [string[]]$ExcludeTag,

    # Demo: also boot the archive under QEMU (TCG, up to 120 s) and check for the marker.
    [switch]$Boot,

    # Bench (tools/bench/Invoke-Bench.ps1, never part of Test): a small image and one run only.
    [switch]$Quick,
    # Bench: runs per measurement (medians are printed).
    [int]$Runs = 5,
    # Bench: only the cost of checking contents at use (exports with the checks on and off in turn).
    [switch]$VerifyCost,
    # Bench: a git revision to compare this build with (built in a worktree under out/bench-baseline/).
    [string]$Baseline,
    # Bench: only the rebuild targets of issue 16 (the part cache).
    [switch]$Rebuild,

    # Fuzz: the readers afl-fuzz runs, one after the other.
    [ArgumentCompletions('tar', 'cpio', 'manifest')]
    [string[]]$FuzzTarget = @('tar', 'cpio', 'manifest'),
    # Fuzz: seconds of afl-fuzz per target.
    [ValidateRange(1, 86400)]
    [int]$FuzzSeconds = 30
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$PSNativeCommandUseErrorActionPreference = $false  # exit codes are checked by hand

function Split-List([string[]]$Values) { @($Values -split ',' | ForEach-Object Trim | Where-Object { $_ }) }
$Task = Split-List $Task
$TestPath = Split-List $TestPath
$TestName = Split-List $TestName
$Tag = Split-List $Tag
$ExcludeTag = Split-List $ExcludeTag
$FuzzTarget = Split-List $FuzzTarget
$tasks = 'Clean', 'Build', 'Help', 'HelpSkeleton', 'Test', 'Package', 'Demo', 'Bench', 'Fuzz'
$unknown = @($Task | Where-Object { $_ -notin $tasks })
if ($unknown) { throw "Unknown task '$($unknown -join "', '")': use $($tasks -join ', ')." }

$root = $PSScriptRoot
$callerDir = $PWD.ProviderPath
$out = Join-Path $root 'out'
$moduleDir = Join-Path $out 'InitramfsPS'
$manifest = Join-Path $moduleDir 'InitramfsPS.psd1'
$helpSource = Join-Path $root 'docs/help'

function Write-Step([string]$Message) { Write-Host "==> $Message" -ForegroundColor Cyan }

function Assert-ExitCode([string]$What) {
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code $LASTEXITCODE." }
}

# Quotes a string for a PowerShell command line given to a child pwsh.
function ConvertTo-Literal([string]$Value) { "'" + $Value.Replace("'", "''") + "'" }

function Invoke-Clean {
    foreach ($dir in 'out', 'src/InitramfsPS/bin', 'src/InitramfsPS/obj', 'src/InitramfsPS.Core/bin', 'src/InitramfsPS.Core/obj',
        'tests/InitramfsPS.Core.Tests/bin', 'tests/InitramfsPS.Core.Tests/obj', 'tools/pester/bin', 'tools/pester/obj') {
        $path = Join-Path $root $dir
        if (Test-Path -LiteralPath $path) {
            Write-Host "Removing $dir"
            Remove-Item -LiteralPath $path -Recurse -Force
        }
    }
}

function Invoke-Build {
    $publishDir = Join-Path $out 'obj-publish'
    if (Test-Path -LiteralPath $publishDir) { Remove-Item -LiteralPath $publishDir -Recurse -Force }
    dotnet publish (Join-Path $root 'src/InitramfsPS/InitramfsPS.csproj') --nologo -c $Configuration -o $publishDir
    Assert-ExitCode 'dotnet publish'

    # Removed rather than overwritten: a pwsh that loaded the old dll keeps its mapping intact.
    if (Test-Path -LiteralPath $moduleDir) { Remove-Item -LiteralPath $moduleDir -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $moduleDir

    # PowerShell brings its own System.Management.Automation; shipping one breaks loading.
    $binaries = Get-ChildItem -LiteralPath $publishDir -File |
        Where-Object { $_.Extension -in '.dll', '.pdb' -and $_.BaseName -ne 'System.Management.Automation' }
    if ('InitramfsPS.dll' -notin $binaries.Name) { throw "dotnet publish produced no InitramfsPS.dll in '$publishDir'." }
    $binaries | Copy-Item -Destination $moduleDir
    # ZstdSharp's methods (bar its AggressiveInlining ones) fully optimised from their first call:
    # the first .cpio.zst export of a process otherwise runs them as tier-0 code
    # (tools/build/Set-AggressiveOptimization.ps1).
    $marked = & (Join-Path $root 'tools/build/Set-AggressiveOptimization.ps1') -Path (Join-Path $publishDir 'ZstdSharp.dll') -Destination (Join-Path $moduleDir 'ZstdSharp.dll')
    Write-Host "ZstdSharp.dll: $($marked.MethodsMarked) methods marked AggressiveOptimization"
    # The same for Blake3 (the block digests checked as contents are read): as tier-0 code its SIMD
    # hashing took about 0.5 s of CPU in the first export of a process, marked 0.05 s (perf;
    # docs/design-notes.md, "Verified at use").
    $marked = & (Join-Path $root 'tools/build/Set-AggressiveOptimization.ps1') -Path (Join-Path $publishDir 'Blake3.dll') -Destination (Join-Path $moduleDir 'Blake3.dll')
    Write-Host "Blake3.dll: $($marked.MethodsMarked) methods marked AggressiveOptimization"
    Copy-Item -LiteralPath (Join-Path $root 'InitramfsPS.psd1') -Destination $moduleDir
    $formatFile = Join-Path $root 'src/InitramfsPS/InitramfsPS.Format.ps1xml'
    if (-not (Test-Path -LiteralPath $formatFile)) { throw "Format file '$formatFile' is missing." }
    Copy-Item -LiteralPath $formatFile -Destination $moduleDir

    $module = Test-ModuleManifest -Path $manifest
    Write-Host "Built $($module.Name) $($module.Version) in $moduleDir"
    Get-ChildItem -LiteralPath $moduleDir | ForEach-Object { Write-Host "  $($_.Name)" }

    # Help is part of the build, so a test run always tests help made from the current markdown.
    Write-Step 'Task Help (part of Build)'
    Invoke-Help
}

# Runs a tools/help script in a child pwsh: it imports the built module, whose dll stays
# locked for the life of the process that loaded it.
function Invoke-HelpTool([string]$Script, [string[]]$Arguments) {
    dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $root "tools/help/$Script") @Arguments
    Assert-ExitCode $Script
}

function Invoke-Help {
    if (-not (Test-Path -LiteralPath $manifest)) { throw "No module in '$moduleDir': run the Build task first." }
    # Writes en-US/InitramfsPS.dll-Help.xml and about_*.help.txt; warns about unfinished markdown.
    Invoke-HelpTool 'Build-Help.ps1' @('-ModulePath', $manifest, '-MarkdownPath', $helpSource)
    # A fresh process, as a user gets: Get-Help must read the MAML, not fall back to metadata.
    Invoke-HelpTool 'Assert-Help.ps1' @('-ModulePath', $manifest, '-MarkdownPath', $helpSource)
}

function Invoke-HelpSkeleton {
    Invoke-HelpTool 'Update-HelpMarkdown.ps1' @('-ModulePath', $manifest, '-MarkdownPath', $helpSource)
    Write-Host 'Fill in every {{ placeholder }} in docs/help: the help tests fail while one remains.'
    Invoke-Help
}

# The engine's unit tests (xunit.v3 under `dotnet test`): returns their passed and failed
# counts, read from the TRX file. A build failure, a crash of the test host or a run in which
# no test ran counts as one failure, so a broken setup cannot look green.
function Invoke-UnitTest {
    $resultsDir = Join-Path $out 'unit-test-results'
    if (Test-Path -LiteralPath $resultsDir) { Remove-Item -LiteralPath $resultsDir -Recurse -Force }
    $trx = Join-Path $resultsDir 'unit-tests.trx'
    dotnet test (Join-Path $root 'tests/InitramfsPS.Core.Tests/InitramfsPS.Core.Tests.csproj') --nologo -c $Configuration `
        --results-directory $resultsDir --logger 'trx;LogFileName=unit-tests.trx' | Out-Host
    $exitCode = $LASTEXITCODE
    $passed = 0
    $failed = 0
    if (Test-Path -LiteralPath $trx -PathType Leaf) {
        $counters = ([xml](Get-Content -Raw -LiteralPath $trx)).TestRun.ResultSummary.Counters
        $passed = [int]$counters.passed
        # Anything that ran and did not pass is a failure; skipped tests are neither.
        $failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted
    }
    if ($exitCode -ne 0 -and $failed -eq 0) {
        Write-Host "dotnet test exited with code $exitCode and no failed test: counted as a failure."
        $failed = 1
    }
    if ($passed + $failed -eq 0) {
        Write-Host 'No unit test ran: counted as a failure.'
        $failed = 1
    }
    Write-Host "Unit tests: $passed of $($passed + $failed) passed ($trx)"
    [pscustomobject]@{ Passed = $passed; Failed = $failed }
}

function Invoke-Test {
    # -TestPath, -TestName and -Tag select Pester tests: a narrowed run is Pester's alone.
    $unit = [pscustomobject]@{ Passed = 0; Failed = 0 }
    if (-not ($TestPath -or $TestName -or $Tag)) {
        Write-Step 'Unit tests: dotnet test tests/InitramfsPS.Core.Tests'
        $unit = Invoke-UnitTest
        Write-Step 'Pester tests'
    }

    dotnet restore (Join-Path $root 'tools/pester/Pester.Restore.csproj') --nologo --verbosity quiet
    Assert-ExitCode 'dotnet restore of Pester'

    # The runner adds the unit tests' counts into its last line, so that line counts both.
    $command = '& {0} -ModulePath {1} -ResultPath {2} -AddPassed {3} -AddFailed {4}' -f (ConvertTo-Literal (Join-Path $root 'tests/Pester/Invoke-Tests.ps1')),
        (ConvertTo-Literal $manifest), (ConvertTo-Literal (Join-Path $out 'test-results.xml')), $unit.Passed, $unit.Failed
    $filters = [ordered]@{
        TestPath   = $TestPath | ForEach-Object { [IO.Path]::GetFullPath($_, $callerDir) }
        TestName   = $TestName
        Tag        = $Tag
        ExcludeTag = $ExcludeTag
    }
    foreach ($filter in $filters.GetEnumerator() | Where-Object Value) {
        $command += " -$($filter.Key) " + (($filter.Value | ForEach-Object { ConvertTo-Literal $_ }) -join ',')
    }
    # A child process: the test run loads the module dll, which stays locked until exit.
    # The runner prints `N passed, N failed` last; nothing may be printed after it.
    $script:TestSummaryPrinted = $true
    dotnet pwsh -NoProfile -NonInteractive -Command "$command; exit `$LASTEXITCODE"
    if ($LASTEXITCODE -ne 0) { exit 1 }
}

# The module's .nupkg in out/, which `Register-PSResourceRepository -Uri ./out` makes a repository
# Install-PSResource reads (README, "Installing the module").
function Invoke-Package {
    if (-not (Test-Path -LiteralPath $manifest)) { throw "No module in '$moduleDir': run the Build task first." }
    # Only this build's package: Install-PSResource takes the highest version in the folder.
    Get-ChildItem -LiteralPath $out -Filter 'InitramfsPS.*.nupkg' -File | Remove-Item -Force
    $package = & (Join-Path $root 'tools/build/New-ModulePackage.ps1') -ModulePath $moduleDir -OutputDirectory $out
    Write-Host "Wrote $($package.FullName)"
    # The engine as a C# library, with the manifest's version (README, "Using the engine from C#").
    $core = & (Join-Path $root 'tools/build/New-CorePackage.ps1') -ManifestPath $manifest -OutputDirectory $out
    Write-Host "Wrote $($core.FullName)"
}

# True when an ELF file has no program interpreter (PT_INTERP), i.e. runs with no libc present.
function Test-StaticElf([string]$Path) {
    $bytes = [IO.File]::ReadAllBytes($Path)
    if ($bytes.Length -lt 64 -or [Text.Encoding]::ASCII.GetString($bytes, 1, 3) -ne 'ELF' -or $bytes[4] -ne 2) {
        return $false  # not a 64-bit ELF
    }
    $phOffset = [BitConverter]::ToInt64($bytes, 0x20)
    $phSize = [BitConverter]::ToUInt16($bytes, 0x36)
    $phCount = [BitConverter]::ToUInt16($bytes, 0x38)
    for ($i = 0; $i -lt $phCount; $i++) {
        if ([BitConverter]::ToUInt32($bytes, $phOffset + $i * $phSize) -eq 3) { return $false }
    }
    return $true
}

# Moves a file into the layout's blobs/sha256 under its digest; returns its descriptor.
function Add-Blob([string]$Layout, [string]$File, [string]$MediaType) {
    $item = Get-Item -LiteralPath $File
    $hex = (Get-FileHash -LiteralPath $File -Algorithm SHA256).Hash.ToLowerInvariant()
    Move-Item -LiteralPath $File -Destination (Join-Path $Layout "blobs/sha256/$hex") -Force
    return [ordered]@{ mediaType = $MediaType; digest = "sha256:$hex"; size = $item.Length }
}

function Write-Json([string]$Path, $Value) {
    [IO.File]::WriteAllText($Path, (ConvertTo-Json $Value -Depth 10 -Compress))  # UTF-8, no BOM
}

function New-DemoImage([string]$DemoDir, [string]$Busybox) {
    # The layer: bin/busybox and a few applet links, owned by root, with fixed times and order.
    $rootfs = Join-Path $DemoDir 'rootfs'
    $null = New-Item -ItemType Directory -Path (Join-Path $rootfs 'bin')
    Copy-Item -LiteralPath $Busybox -Destination (Join-Path $rootfs 'bin/busybox')
    foreach ($applet in 'sh', 'poweroff', 'mount', 'echo', 'cat') {
        ln -s busybox (Join-Path $rootfs "bin/$applet"); Assert-ExitCode "ln -s busybox bin/$applet"
    }
    chmod 0755 (Join-Path $rootfs 'bin') (Join-Path $rootfs 'bin/busybox'); Assert-ExitCode 'chmod'  # whatever the umask
    $tarFile = Join-Path $DemoDir 'layer.tar'
    tar --create --file $tarFile --directory $rootfs --owner=0 --group=0 --numeric-owner `
        --sort=name --mtime=@0 --format=gnu bin
    Assert-ExitCode 'tar'
    $diffId = 'sha256:' + (Get-FileHash -LiteralPath $tarFile -Algorithm SHA256).Hash.ToLowerInvariant()
    gzip -n -9 --force $tarFile; Assert-ExitCode 'gzip'
    Remove-Item -LiteralPath $rootfs -Recurse -Force

    $layout = Join-Path $DemoDir 'layout'
    $null = New-Item -ItemType Directory -Path (Join-Path $layout 'blobs/sha256')
    $layer = Add-Blob $layout "$tarFile.gz" 'application/vnd.oci.image.layer.v1.tar+gzip'

    $configFile = Join-Path $DemoDir 'config.json'
    Write-Json $configFile ([ordered]@{
        architecture = 'amd64'
        os           = 'linux'
        config       = [ordered]@{
            Cmd = @('/bin/sh')
            Env = @('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
        }
        rootfs       = [ordered]@{ type = 'layers'; diff_ids = @($diffId) }
    })
    $config = Add-Blob $layout $configFile 'application/vnd.oci.image.config.v1+json'

    $manifestFile = Join-Path $DemoDir 'manifest.json'
    Write-Json $manifestFile ([ordered]@{
        schemaVersion = 2
        mediaType     = 'application/vnd.oci.image.manifest.v1+json'
        config        = $config
        layers        = @($layer)
    })
    $manifest = Add-Blob $layout $manifestFile 'application/vnd.oci.image.manifest.v1+json'
    $manifest.annotations = @{ 'org.opencontainers.image.ref.name' = 'demo' }

    Write-Json (Join-Path $layout 'oci-layout') ([ordered]@{ imageLayoutVersion = '1.0.0' })
    Write-Json (Join-Path $layout 'index.json') ([ordered]@{
        schemaVersion = 2
        mediaType     = 'application/vnd.oci.image.index.v1+json'
        manifests     = @($manifest)
    })
    Write-Host "OCI image layout: $layout (tag demo, manifest $($manifest.digest))"
}

function Invoke-Demo {
    $busybox = '/bin/busybox'
    if (-not (Test-Path -LiteralPath $busybox -PathType Leaf) -or -not (Test-StaticElf $busybox)) {
        throw "The demo needs a static $busybox (Debian's busybox-static): run 'sudo tools/install-deps.sh --demo'."
    }
    $demoDir = Join-Path $out 'demo'
    if (Test-Path -LiteralPath $demoDir) { Remove-Item -LiteralPath $demoDir -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $demoDir
    New-DemoImage $demoDir $busybox

    $agent = Join-Path $demoDir 'agent'
    [IO.File]::WriteAllText($agent, "#!/bin/sh`necho `"agent running`"`n")
    chmod 0755 $agent; Assert-ExitCode 'chmod'
    $init = @(
        '#!/bin/sh'
        'export PATH=/usr/sbin:/usr/bin:/sbin:/bin'
        'mount -t proc proc /proc'
        'mount -t sysfs sysfs /sys'
        '/usr/bin/agent'
        'echo INITRAMFSPS-DEMO-OK'
        'poweroff -f'
    ) -join "`n"
    [IO.File]::WriteAllText((Join-Path $demoDir 'init'), "$init`n")

    # The main job, in a child pwsh so this process never loads (and locks) the module dll.
    $job = @'
$ErrorActionPreference = 'Stop'
Import-Module ./out/InitramfsPS/InitramfsPS.psd1
$init = Get-Content -Raw out/demo/init
$report = Get-OciImage oci:out/demo/layout:demo | Add-InitramfsFile out/demo/agent /usr/bin/agent | Set-InitramfsInit -Content $init | Export-Initramfs out/demo/demo.cpio.zst
$report | Format-List
'@
    Write-Step 'Get-OciImage oci:out/demo/layout:demo | Add-InitramfsFile out/demo/agent /usr/bin/agent | Set-InitramfsInit -Content $init | Export-Initramfs out/demo/demo.cpio.zst'
    Push-Location -LiteralPath $root
    try { dotnet pwsh -NoProfile -NonInteractive -Command $job } finally { Pop-Location }
    Assert-ExitCode 'The demo pipeline'

    $natural = { [regex]::Replace($_.Name, '\d+', { $args[0].Value.PadLeft(10, '0') }) }
    $kernel = Get-ChildItem -Path '/boot' -Filter 'vmlinuz-*' -File -ErrorAction SilentlyContinue |
        Sort-Object $natural | Select-Object -Last 1
    $kernelPath = if ($kernel) { $kernel.FullName } else { '/boot/vmlinuz-<version>' }
    $qemu = "qemu-system-x86_64 -M q35 -accel tcg -m 256 -no-reboot -nographic -kernel $kernelPath " +
        "-initrd out/demo/demo.cpio.zst -append 'console=ttyS0 panic=-1 quiet' </dev/null"
    Write-Step 'Boot it with (from the repository root):'
    Write-Host $qemu
    if (-not $kernel) { Write-Host 'No kernel in /boot: run tools/install-deps.sh (linux-image-amd64).' }

    if (-not $Boot) { return }
    if (-not (Get-Command qemu-system-x86_64 -CommandType Application -ErrorAction SilentlyContinue) -or -not $kernel) {
        Write-Warning 'Cannot boot: QEMU or a kernel is missing; run tools/install-deps.sh.'
        return
    }
    Write-Step 'Booting under QEMU (TCG, timeout 120 s)'
    $bootLog = @()
    Push-Location -LiteralPath $root
    try { bash -c "timeout 120 $qemu 2>&1" | Tee-Object -Variable bootLog } finally { Pop-Location }
    if (-not ($bootLog -match 'INITRAMFSPS-DEMO-OK')) { throw 'The demo archive booted without printing INITRAMFSPS-DEMO-OK.' }
    Write-Host 'Booted: INITRAMFSPS-DEMO-OK seen.' -ForegroundColor Green
}

# Export-Initramfs against native zstd/pigz and skopeo+umoci+cpio+zstd (tracker issue 6): images
# built and cached under out/bench-cache, a local registry, medians, peak RSS, PASS/FAIL per target.
function Invoke-Bench {
    $benchArgs = @('-NoProfile', '-NonInteractive', '-File', (Join-Path $root 'tools/bench/Invoke-Bench.ps1'), '-ModulePath', $manifest, '-Runs', "$Runs")
    if ($Quick) { $benchArgs += '-Quick' }
    if ($VerifyCost) { $benchArgs += '-VerifyCost' }
    if ($Baseline) { $benchArgs += @('-BaselineModulePath', (Build-Baseline $Baseline)) }
    if ($Rebuild) { $benchArgs += '-Rebuild' }
    dotnet pwsh @benchArgs
    Assert-ExitCode 'Bench'
}

# The module as built at git revision $Revision, in a worktree of its own (kept for the next run).
function Build-Baseline([string]$Revision) {
    $commit = (& git -C $root rev-parse --verify "$Revision^{commit}" 2>$null)
    if ($LASTEXITCODE -or -not $commit) { throw "-Baseline: '$Revision' is not a git revision of this repository." }
    $tree = Join-Path $root "out/bench-baseline/$commit"
    $built = Join-Path $tree 'out/InitramfsPS/InitramfsPS.psd1'
    if (-not (Test-Path -LiteralPath $built)) {
        Write-Step "Building the baseline $Revision ($commit) in $tree"
        if (-not (Test-Path -LiteralPath $tree)) {
            & git -C $root worktree add --detach $tree $commit | Out-Host
            Assert-ExitCode "git worktree add $commit"
        }
        & dotnet pwsh -NoProfile -File (Join-Path $tree 'build.ps1') -Task Build -Configuration $Configuration | Out-Host
        Assert-ExitCode "the baseline's build"
    }
    $built
}

# afl-fuzz on the readers (tools/fuzz/Invoke-AflFuzz.ps1): a crash is copied into the regression
# inputs tests/Fuzz/crashes/ and fails the task.
function Invoke-Fuzz {
    $results = @(& (Join-Path $root 'tools/fuzz/Invoke-AflFuzz.ps1') -Target $FuzzTarget -Seconds $FuzzSeconds -Configuration $Configuration)
    foreach ($r in $results | Where-Object Hangs) {
        Write-Warning "afl-fuzz saw $($r.Hangs) input(s) of $($r.Target) run past its timeout: $($r.Findings)/default/hangs"
    }
    $saved = @($results | ForEach-Object Saved)
    if ($saved) {
        throw "afl-fuzz found crashes; kept as regression inputs (tests/Fuzz --replay runs them): $($saved -join ', ')"
    }
    Write-Host "afl-fuzz: no crash in $($FuzzTarget -join ', ') ($FuzzSeconds s each)."
}

# Resolve the plan: dependencies first, each task once, otherwise in the order given.
$dependsOn = @{ Clean = @(); Build = @(); Help = @(); HelpSkeleton = @('Build'); Test = @('Build'); Package = @('Build'); Demo = @('Build'); Bench = @('Build'); Fuzz = @() }
$plan = [Collections.Generic.List[string]]::new()
foreach ($name in $Task) {
    foreach ($step in @($dependsOn[$name]) + $name) {
        if (-not $plan.Contains($step)) { $plan.Add($step) }
    }
}
if ($plan.Contains('Build')) { $null = $plan.Remove('Help') }  # Build runs Help itself

$script:TestSummaryPrinted = $false
Push-Location -LiteralPath $root  # `dotnet pwsh` finds the tool manifest from here
try {
    foreach ($step in $plan) {
        Write-Step "Task $step"
        & "Invoke-$step"
    }
}
catch {
    Write-Host "build.ps1: task failed: $_" -ForegroundColor Red
    Write-Host $_.ScriptStackTrace
    # CI reads the last line; a run that never reached the tests must not end without counts.
    if ($plan.Contains('Test') -and -not $script:TestSummaryPrinted) { Write-Host '0 passed, 1 failed' }
    exit 1
}
finally {
    Pop-Location
}
