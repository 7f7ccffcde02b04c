# Tab completion (TabExpansion2, as the prompt runs it) of what can be listed:
#  - Get-OciImage -Reference: the references whose tags the cache recorded (filled by pulls from a
#    real docker-registry on 127.0.0.1), the tags of an OCI layout after oci:<dir>:, its directory
#    before that, and the names in a docker save archive after docker-archive:<file>:;
#  - Clear-OciCache -Digest: the digests in the cache, with what each blob is and its size;
#  - rootfs paths when the piped variable holds an OciImage (expanded, and remembered).
# Needs docker-registry and skopeo (the registry rig).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $script:savedCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    # The references below are relative, as a user types them at the prompt.
    Push-Location -LiteralPath $work

    $app = New-TestTar -Entry @(
        @{ Name = 'usr/'; Type = 'Dir' },
        @{ Name = 'usr/bin/'; Type = 'Dir' },
        @{ Name = 'usr/bin/agent'; Data = 'agent'; Mode = '0755' },
        @{ Name = 'usr/share/'; Type = 'Dir' }
    )
    $other = New-TestTar -Entry @(@{ Name = 'opt/'; Type = 'Dir' }, @{ Name = 'opt/tool'; Data = 'tool' })
    $script:layoutApp = New-TestOciLayout -Path (Join-Path $work layout) -Layer @(, $app) -Tag app
    $null = New-TestOciLayout -Path (Join-Path $work layout) -Layer @(, $other) -Tag 'v2.0'
    $null = New-Item -ItemType Directory -Path (Join-Path $work 'lab dir')
    $null = New-TestDockerArchive -Path (Join-Path $work img.tar) -Layer @(, $app) -RepoTag 'test/app:1.0', 'busybox:latest'
    $in = [IO.File]::OpenRead((Join-Path $work img.tar))
    $gzip = [IO.Compression.GZipStream]::new([IO.File]::Create((Join-Path $work img.tar.gz)), [IO.Compression.CompressionMode]::Compress)
    try { $in.CopyTo($gzip) } finally { $gzip.Dispose(); $in.Dispose() }
    # docker save (before Docker 25) writes manifest.json last, after the layers.
    $members = Join-Path $work members
    $null = New-Item -ItemType Directory -Path $members
    & tar -C $members -xf (Join-Path $work img.tar)
    $order = @(Get-ChildItem -LiteralPath $members -Name | Where-Object { $_ -ne 'manifest.json' }) + 'manifest.json'
    & tar -C $members -cf (Join-Path $work last.tar) @order
    if ($LASTEXITCODE -ne 0) { throw 'tar failed' }

    $script:registry = Start-TestRegistry
    $script:pushed = Push-TestImage -Layout (Join-Path $work layout) -Tag app -Registry $registry.Url -Repository library/busybox -DestinationTag 1
    $script:pulled = Get-OciImage $pushed.Reference

    function script:Complete([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches)
    }
    function script:Texts([string] $Line) { @(Complete $Line | ForEach-Object CompletionText) }
}

AfterAll {
    Pop-Location
    Stop-TestRegistry $registry
    $env:INITRAMFSPS_CACHE = $savedCache
    Remove-Variable -Scope Global -Name completionImage, completionOther -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Get-OciImage -Reference completion' {
    It 'offers the tags of an OCI layout after oci:dir:, and nothing for a broken or missing layout' {
        Texts 'Get-OciImage oci:./layout:' | Should -Be @('oci:./layout:app', 'oci:./layout:v2.0')
        Texts 'Get-OciImage -Reference oci:./layout:v' | Should -Be @('oci:./layout:v2.0')
        Texts "Get-OciImage oci:$work/layout:a" | Should -Be @("oci:$work/layout:app")
        $null = New-Item -ItemType Directory -Path (Join-Path $work broken)
        Set-Content -LiteralPath (Join-Path $work broken/index.json) -Value '{"manifests": [ {'
        Texts 'Get-OciImage oci:./broken:' | Should -BeNullOrEmpty
        Texts 'Get-OciImage oci:./missing:' | Should -BeNullOrEmpty
    }

    It 'completes the directory of oci:, a layout as it is and another directory to go into, quoted when needed' {
        Texts 'Get-OciImage oci:./la' | Should -Be @("'oci:./lab dir/'", 'oci:./layout')
        Texts "Get-OciImage 'oci:./lab" | Should -Be @("'oci:./lab dir/'")
    }

    It 'offers the names in a docker save archive, plain or gzip-wrapped, and nothing for a broken one' {
        Texts 'Get-OciImage docker-archive:./img.tar:' | Should -Be @('docker-archive:./img.tar:test/app:1.0', 'docker-archive:./img.tar:busybox:latest')
        Texts 'Get-OciImage docker-archive:./img.tar.gz:b' | Should -Be @('docker-archive:./img.tar.gz:busybox:latest')
        Texts 'Get-OciImage docker-archive:./last.tar:t' | Should -Be @('docker-archive:./last.tar:test/app:1.0')
        Texts 'Get-OciImage docker-archive:./img.t' | Should -Be @('docker-archive:./img.tar', 'docker-archive:./img.tar.gz')
        Set-Content -LiteralPath (Join-Path $work bad.tar) -Value 'not a tar archive'
        Texts 'Get-OciImage docker-archive:./bad.tar:' | Should -BeNullOrEmpty
        Texts 'Get-OciImage docker-archive:./missing.tar:' | Should -BeNullOrEmpty
    }

    It 'offers the references pulled into the cache, as they are typed' {
        $expected = "$($registry.Url)/library/busybox:1"
        Texts 'Get-OciImage 127.0.0' | Should -Be @($expected)
        Texts 'Get-OciImage busy' | Should -Be @($expected)
        Texts 'Get-OciImage docker://127' | Should -Be @("docker://$expected")
        (Complete 'Get-OciImage busy')[0].ToolTip | Should -Match ([regex]::Escape($pulled.Digest.ToString()))
        # What the tag names is what -Offline resolves it to.
        (Get-OciImage $expected -Offline).Digest | Should -Be $pulled.Digest
    }

    It 'shows Docker Hub references as Docker does, and leaves out tags whose manifest left the cache' {
        # Record the tags as pulls from Docker Hub would (the tests never reach Docker Hub).
        $store = New-EngineObject InitramfsPS.Cache.BlobStore -Arguments $env:INITRAMFSPS_CACHE
        $store.WriteRef('docker.io', 'library/alpine', '3.20', $pulled.Digest)
        $store.WriteRef('docker.io', 'team/alpine-tools', '1', $pulled.Digest)
        $store.WriteRef('docker.io', 'library/gone', '1', [InitramfsPS.Images.Digest]::Parse('sha256:' + '0' * 64, 'test'))
        Texts 'Get-OciImage alp' | Should -Be @('alpine:3.20', 'team/alpine-tools:1')
        Texts 'Get-OciImage team/' | Should -Be @('team/alpine-tools:1')
        Texts 'Get-OciImage docker.io/library/al' | Should -Be @('docker.io/library/alpine:3.20')
        Texts 'Get-OciImage gon' | Should -BeNullOrEmpty
    }
}

Describe 'Clear-OciCache -Digest completion' {
    It 'offers every digest in the cache, saying what each blob is and its size' {
        $results = Complete 'Clear-OciCache -Digest sha256:'
        $results.CompletionText | Should -Be @(Get-OciCache | ForEach-Object { $_.Digest.ToString() })
        $name = "$($registry.Url)/library/busybox:1"
        $tips = @{}
        foreach ($r in $results) { $tips[$r.CompletionText] = $r.ToolTip }
        $tips[$pulled.Digest.ToString()] | Should -BeLike "manifest of $name, * B"
        $tips[$pulled.ConfigDigest.ToString()] | Should -BeLike "image config of $name, * B"
        $tips[$pulled.Layers[0].Digest.ToString()] | Should -BeLike "layer 1 of $name, * B"
        $tips[$pulled.Layers[0].DiffId.ToString()] | Should -BeLike "uncompressed layer 1 of $name, *"
    }

    It 'filters by the typed prefix, with or without sha256:' {
        $hex = $pulled.Digest.Hex.Substring(0, 10)
        Texts "Clear-OciCache -Digest sha256:$hex" | Should -Be @($pulled.Digest.ToString())
        Texts "Clear-OciCache $hex" | Should -Be @($pulled.Digest.ToString())
        Texts 'Clear-OciCache -Digest sha256:zz' | Should -BeNullOrEmpty
    }
}

Describe 'Rootfs path completion of a piped OciImage' {
    It 'expands the image the piped variable holds' {
        # Completion looks the piped variable up as the prompt would: in the global scope.
        $global:completionImage = Get-OciImage oci:./layout:app
        Texts '$completionImage | Get-InitramfsItem /us' | Should -Be @('/usr/')
        Texts '$completionImage | Add-InitramfsFile ./img.tar /usr/' | Should -Be @('/usr/bin/', '/usr/share/')
        Texts 'Get-InitramfsItem -InputObject $completionImage /usr/bin/a' | Should -Be @('/usr/bin/agent')
    }

    It 'remembers the image it expanded last, by its manifest digest' {
        $memo = New-TestOciLayout -Path (Join-Path $work memo) -Layer @(, (New-TestTar -Entry @(@{ Name = 'srv/'; Type = 'Dir' }, @{ Name = 'srv/www'; Data = 'w' }))) -Tag m
        $global:completionImage = Get-OciImage oci:./memo:m
        Texts '$completionImage | Get-InitramfsItem /s' | Should -Be @('/srv/')
        # With the layer gone from both the layout and the cache, only the remembered rootfs can answer.
        Remove-Item -Recurse -Force (Join-Path $work memo)
        Clear-OciCache -Digest $memo.DiffIds[0]
        Texts '$completionImage | Get-InitramfsItem /srv/' | Should -Be @('/srv/www')
        # Another image is another rootfs.
        $global:completionOther = Get-OciImage oci:./layout:v2.0
        Texts '$completionOther | Get-InitramfsItem /o' | Should -Be @('/opt/')
    }
}
