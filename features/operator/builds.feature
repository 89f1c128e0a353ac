@x86 @docker
Feature: The IT operator registers models and builds them for boards through the API
  As an on-site IT operator, I want to register models and build them for my
  boards from one service, so that every device gets an image made for it.

  Scenario: a zoo model is trained, registered and built for x86-tflm as jobs
    Given the service is running with a fresh database
    When I ask the service to train "hello_world" from the zoo
    Then the job succeeds and model "hello_world" version 1 is registered
    When I request a build of "hello_world" for "x86-tflm"
    Then the service answers 202 with a job id
    And the job reports its steps until it succeeds
    And the build's OS image can be downloaded by its hash, also in ranges
    And the service's database records the build

  Scenario: a file that is not a model is refused and nothing is stored
    Given the service is running with a fresh database
    When I upload a file that is not a model as "junk"
    Then the service answers 422 naming the problem
    And the model list is empty
