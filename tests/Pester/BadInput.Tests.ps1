# Every failure a user can cause gets one ErrorRecord with a stable id, and no output file.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $script:goodTar = New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }, @{ Name = 'etc/'; Type = 'Dir' })

    # Runs the canonical pipeline and returns its errors; asserts that no archive was written.
    function script:Invoke-Failing {
        param([string] $Reference, [string] $Out = (Join-Path $work "out-$([guid]::NewGuid()).cpio.gz"))
        $err = $null
        $result = Get-OciImage $Reference -ErrorVariable +err -ErrorAction SilentlyContinue |
            Export-Initramfs $Out -ErrorVariable +err -ErrorAction SilentlyContinue
        $result | Should -BeNullOrEmpty
        Test-Path $Out | Should -BeFalse
        Get-ChildItem (Split-Path $Out) -Filter '*.partial' -Force | Should -BeNullOrEmpty
        , $err
    }

    # A layer no other test uses: a cached, verified copy of a layer (keyed by its diff_id) is
    # rightly used instead of a damaged compressed blob, so damage tests need layers of their own.
    function script:New-UniqueTar {
        New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }, @{ Name = 'unique'; Data = [guid]::NewGuid().ToString() })
    }

    # Replaces layer 1's blob with other bytes, rewriting manifest and index so every digest is right:
    # the layout is then consistent and only the layer's content is bad.
    function script:New-LayoutWithLayerBytes {
        param([string] $Name, [byte[]] $Bytes)
        $img = New-TestOciLayout -Path (Join-Path $work $Name) -Layer @(, (New-UniqueTar)) -Tag t
        $hex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($Bytes))).Hash.ToLowerInvariant()
        [IO.File]::WriteAllBytes("$($img.Path)/blobs/sha256/$hex", $Bytes)
        $old = $img.ManifestDigest.Substring(7)
        $manifest = Get-Content -Raw "$($img.Path)/blobs/sha256/$old" | ConvertFrom-Json
        $manifest.layers[0].digest = "sha256:$hex"
        $manifest.layers[0].size = $Bytes.Length
        $json = [Text.Encoding]::UTF8.GetBytes(($manifest | ConvertTo-Json -Depth 10 -Compress))
        $mhex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($json))).Hash.ToLowerInvariant()
        [IO.File]::WriteAllBytes("$($img.Path)/blobs/sha256/$mhex", $json)
        $index = Get-Content -Raw "$($img.Path)/index.json" | ConvertFrom-Json
        $index.manifests[0].digest = "sha256:$mhex"
        $index.manifests[0].size = $json.Length
        $index | ConvertTo-Json -Depth 10 | Set-Content "$($img.Path)/index.json"
        $img.Reference
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Bad references and missing images' {
    It 'a missing layout' {
        $err = Invoke-Failing "oci:$work/does-not-exist:t"
        $err[0].FullyQualifiedErrorId | Should -Be 'LayoutNotFound,InitramfsPS.Commands.GetOciImageCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'an unknown tag names the tags that exist' {
        $img = New-TestOciLayout -Path (Join-Path $work tags) -Layer @(, $goodTar) -Tag present
        $err = Invoke-Failing "oci:$($img.Path):absent"
        $err[0].FullyQualifiedErrorId | Should -BeLike 'TagNotFound,*'
        $err[0].Exception.Message | Should -Match "no image tagged 'absent'. Tags: present"
    }

    It 'a malformed reference: <Ref>' -ForEach @(
        @{ Ref = 'UPPER/case' }
        @{ Ref = 'alpine:bad tag' }
        @{ Ref = 'alpine@sha256:1234' }
        @{ Ref = 'oci:' }
        @{ Ref = '' + 'docker-archive:' }
    ) {
        $err = Invoke-Failing $Ref
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidReference,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'a registry whose name does not resolve fails at once, naming it' {
        $took = Measure-Command { $script:err = Invoke-Failing 'registry.invalid/team/app:1.0' }
        $err[0].FullyQualifiedErrorId | Should -BeLike 'RegistryUnavailable,*'
        $err[0].Exception.Message | Should -Match 'registry\.invalid'
        $took.TotalSeconds | Should -BeLessThan 10 -Because 'a name that does not resolve is not retried'
    }

    It 'a docker archive missing a layer' {
        $archive = Join-Path $work 'missing-layer.tar'
        New-TestDockerArchive -Path $archive -Layer $goodTar, (New-TestTar -Entry @(@{ Name = 'x'; Data = 'x' })) -OmitLayer 1 | Out-Null
        $err = Invoke-Failing "docker-archive:$archive"
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ArchiveLayerMissing,*'
    }
}

Describe 'Parsing references' {
    It '<Text> is <Expected>' -ForEach @(
        @{ Text = 'alpine'; Expected = 'docker.io/library/alpine:latest' }
        @{ Text = 'alpine:3.20'; Expected = 'docker.io/library/alpine:3.20' }
        @{ Text = 'docker.io/library/alpine:3.20'; Expected = 'docker.io/library/alpine:3.20' }
        @{ Text = 'index.docker.io/library/alpine'; Expected = 'docker.io/library/alpine:latest' }
        @{ Text = 'bitnami/redis:7'; Expected = 'docker.io/bitnami/redis:7' }
        @{ Text = 'ghcr.io/owner/repo/sub:v1.2'; Expected = 'ghcr.io/owner/repo/sub:v1.2' }
        @{ Text = 'localhost:5000/app'; Expected = 'localhost:5000/app:latest' }
        @{ Text = '127.0.0.1:5000/team/app:dev'; Expected = '127.0.0.1:5000/team/app:dev' }
        @{ Text = 'docker://quay.io/prom/node-exporter:v1'; Expected = 'quay.io/prom/node-exporter:v1' }
        @{ Text = "alpine@sha256:$('a' * 64)"; Expected = "docker.io/library/alpine@sha256:$('a' * 64)" }
        @{ Text = "registry:5000/a:t@sha256:$('b' * 64)"; Expected = "registry:5000/a:t@sha256:$('b' * 64)" }
        @{ Text = 'oci:./layout:app'; Expected = 'oci:./layout:app' }
        @{ Text = "oci:/x/y@sha256:$('c' * 64)"; Expected = "oci:/x/y@sha256:$('c' * 64)" }
        @{ Text = 'docker-archive:img.tar:busybox'; Expected = 'docker-archive:img.tar:busybox:latest' }
        @{ Text = 'docker-archive:img.tar:@1'; Expected = 'docker-archive:img.tar:@1' }
    ) {
        [InitramfsPS.Images.ImageReference]::Parse($Text).ToString() | Should -Be $Expected
    }

    It 'docker.io is served by registry-1.docker.io' {
        [InitramfsPS.Images.ImageReference]::Parse('alpine').ApiHost | Should -Be 'registry-1.docker.io'
        [InitramfsPS.Images.ImageReference]::Parse('ghcr.io/a/b').ApiHost | Should -Be 'ghcr.io'
    }
}

Describe 'Damaged layers' {
    It 'a corrupt gzip layer (digest right, data wrong)' {
        $bytes = [byte[]](@(0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3) + (1..200 | ForEach-Object { 0xFF }))
        $ref = New-LayoutWithLayerBytes corrupt-gzip $bytes
        $err = Invoke-Failing $ref
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerCorrupt,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].Exception.Message | Should -Match '^layer 1 \('
    }

    It 'a layer whose bytes do not match its digest' {
        $img = New-TestOciLayout -Path (Join-Path $work tampered) -Layer @(, (New-UniqueTar)) -Tag t
        $blob = "$($img.Path)/blobs/sha256/$($img.LayerDigests[0].Substring(7))"
        $bytes = [IO.File]::ReadAllBytes($blob)
        $bytes[20] = $bytes[20] -bxor 0x40
        [IO.File]::WriteAllBytes($blob, $bytes)
        $err = Invoke-Failing $img.Reference
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DigestMismatch,*'
        $err[0].Exception.Message | Should -Match $img.LayerDigests[0]
        Get-ChildItem "$env:INITRAMFSPS_CACHE/blobs/sha256" -ErrorAction SilentlyContinue |
            Where-Object Name -EQ $img.DiffIds[0].Substring(7) | Should -BeNullOrEmpty -Because 'nothing unverified is cached'
    }

    It 'a manifest whose bytes do not match its digest' {
        $img = New-TestOciLayout -Path (Join-Path $work bad-manifest) -Layer @(, $goodTar) -Tag t
        Add-Content "$($img.Path)/blobs/sha256/$($img.ManifestDigest.Substring(7))" ' '
        $err = Invoke-Failing $img.Reference
        $err[0].FullyQualifiedErrorId | Should -BeLike 'BlobSizeMismatch,*'
    }

    It 'a config that is not JSON' {
        $img = New-TestOciLayout -Path (Join-Path $work bad-config) -Layer @(, $goodTar) -Tag t -ConfigJson '{not json'
        $err = Invoke-Failing $img.Reference
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ManifestInvalid,*'
    }

    It 'an entry that climbs out of the root is refused, naming the layer and the path' {
        $marker = "/tmp/initramfsps-escape-$([guid]::NewGuid())"
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = 'x'; Mode = '0755' }, @{ Name = "../../../../../..$marker"; Data = 'escaped' })
        $img = New-TestOciLayout -Path (Join-Path $work traversal) -Layer @(, $tar) -Tag t
        $err = Invoke-Failing $img.Reference
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerEntryOutsideRoot,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $err[0].Exception.Message | Should -Match 'layer 1 \('
        $err[0].Exception.Message | Should -Match ([regex]::Escape("../../../../../..$marker"))
        Test-Path $marker | Should -BeFalse
    }

    It 'a decompression bomb stops at -MaxLayerSize' {
        $tar = New-TestTar -Entry @(@{ Name = 'zeros'; Data = [byte[]]::new(4MB) })
        $img = New-TestOciLayout -Path (Join-Path $work bomb) -Layer @(, $tar) -Tag t
        $err = $null
        Get-OciImage $img.Reference | Expand-OciLayers -MaxLayerSize 1MB -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerTooLarge,*'
        $err[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
    }
}
